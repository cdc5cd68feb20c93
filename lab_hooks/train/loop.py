"""The trainer: one phase, read top to bottom (nanoGPT style).

`train(samples, init_checkpoint, out_dir, config)` fine-tunes the HF checkpoint on the
samples (full, LoRA or OSF), writes resume points into `out_dir`, and ends with
`out_dir/model`: an HF dir (safetensors, tokenizer, chat template; adapters merged) that
transformers and vLLM load, with `summary.json` beside the weights.

- Optimizer: AdamW; learning rate warms up linearly, then stays constant (the LAB
  paper found decay to zero between phases harmful).
- A step is `batch_size` samples (across all processes): packed into rows of at most
  `max_tokens`, gradients accumulated over the rows, loss = sum over trained tokens /
  trained tokens in the step. So the gradient does not depend on how the step was
  packed or split across processes.
- Data order: a permutation per epoch drawn from (seed, epoch), so the step number
  alone says what comes next.
- Exact resume: every `save_every` steps a resume point (lab_hooks.train.resume: DCP
  shards + RNG + step). A run killed anywhere (kill -9 included) restarts from it; on
  CPU it ends with weights identical to an uninterrupted run.
- Scale-out: under torchrun the model is sharded with FSDP2 (lab_hooks.train.fsdp) and
  each process trains on a token-balanced share of every step: same global batch, same
  update. On a GPU, or with `nproc` > 1 (default: one process per visible GPU), `train`
  launches torchrun itself (lab_hooks.train.launch); on CPU it runs in-process by default.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from lab_hooks.train import fsdp, resume
from lab_hooks.train.config import TrainConfig
from lab_hooks.train.data import EMPTY_ROW, IGNORE, prepare, rank_rows
from lab_hooks.train.mix import digest
from lab_hooks.train.model import TrainError, export, load_model, project_osf_gradients

__all__ = ["TrainConfig", "TrainError", "row_loss", "train"]


def row_loss(model, row: dict, device: torch.device) -> tuple[torch.Tensor, int]:
    """(summed loss, count) over a packed row's trained tokens; the LM head runs only there."""
    ids, labels, pos = (torch.tensor([row[k]], device=device) for k in ("input_ids", "labels", "position_ids"))
    targets = labels[0, 1:]
    trained = (targets != IGNORE).nonzero().squeeze(1)
    logits = model(input_ids=ids, position_ids=pos, use_cache=False, logits_to_keep=trained).logits[0]
    return F.cross_entropy(logits.float(), targets[trained], reduction="sum"), len(trained)


def train(samples: list[dict], init_checkpoint: Path | str, out_dir: Path | str, config: TrainConfig) -> tuple[Path, dict]:
    """Train one phase; returns (HF checkpoint dir, summary). Reruns resume or return the result."""
    init_checkpoint, out_dir = Path(init_checkpoint), Path(out_dir)
    final = out_dir / "model"
    if (final / "summary.json").is_file():
        return final, json.loads((final / "summary.json").read_text())
    if not fsdp.under_torchrun() and (fsdp.processes(config) > 1 or torch.cuda.is_available()):  # FSDP2 on any GPU
        from lab_hooks.train.launch import launch

        return launch(samples, init_checkpoint, out_dir, config)
    rank, world, device = fsdp.join()
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    # --- model and data: render, mask, drop what cannot train; shard under torchrun -----------
    tokenizer, model = load_model(init_checkpoint, config, device)
    prepared = prepare(samples, tokenizer, config.max_seq_len, config.min_trained_tokens)
    data = prepared.samples
    if not data:
        raise TrainError(f"no trainable samples among {len(samples)} (dropped: {prepared.dropped})")
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    if dist.is_initialized():
        model = fsdp.shard(model, config, device)
    autocast = nullcontext()  # under FSDP2 its mixed-precision policy casts instead
    if not dist.is_initialized() and fsdp.bf16(config, device):
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    # --- optimizer: AdamW, linear warm-up then constant --------------------------------------
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    # --- resume from the last saved step, if this very run saved one -------------------------
    run_id = hashlib.sha256(
        json.dumps([config.identity(), str(init_checkpoint.resolve()), [digest(s) for s in samples]]).encode()
    ).hexdigest()
    start, curve = resume.load(out_dir, run_id, model, optimizer)
    out_dir.mkdir(parents=True, exist_ok=True)

    # --- the loop ----------------------------------------------------------------------------
    from tqdm import tqdm

    model.train()
    bar = tqdm(total=total_steps, initial=start, disable=rank != 0 or not config.progress, unit="step")
    tokens_seen, real, positions, began = 0, 0, 0, time.perf_counter()  # real/positions: padding check
    for step in range(start, total_steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (step + 1) / max(config.warmup_steps, 1))
        epoch, index = divmod(step, steps_per_epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
        batch = [data[i] for i in order[index * config.batch_size : (index + 1) * config.batch_size]]
        step_trained = sum(s.trained_tokens for s in batch)

        loss_sum = torch.zeros((), device=device)
        for row in rank_rows(batch, world, rank, config.max_tokens):
            with autocast:
                loss, _ = row_loss(model, row, device)
            (loss / step_trained).backward()  # under FSDP2: reduce-scattered (summed) into the shards
            loss_sum += loss.detach()
            positions += len(row["input_ids"])
            real += 0 if row is EMPTY_ROW else len(row["input_ids"])
        if world > 1:
            dist.all_reduce(loss_sum)
        if config.method == "osf":
            project_osf_gradients(model)
        grad_norm = fsdp.clip_grad_norm(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        curve.append({"loss": loss_sum.item() / step_trained, "grad_norm": grad_norm})
        tokens_seen += sum(len(s.input_ids) for s in batch)
        bar.set_postfix(loss=f"{curve[-1]['loss']:.4f}", tok_s=f"{tokens_seen / (time.perf_counter() - began):.0f}")
        bar.update()
        done = step + 1
        if done % config.save_every == 0 and done < total_steps:
            resume.save(out_dir, run_id, done, curve, model, optimizer)
    bar.close()
    wall = time.perf_counter() - began

    # --- the served checkpoint: an HF dir, adapters merged, gathered on rank 0 ---------------
    all_tokens = sum(len(s.input_ids) for s in data)
    summary = {
        "method": config.method,
        "samples": len(data),
        "dropped": prepared.dropped,
        "steps": total_steps,
        "resumed_at_step": start,
        "world_size": world,
        "tokens_per_epoch": all_tokens,
        "trained_tokens_per_epoch": sum(s.trained_tokens for s in data),
        "real_token_fraction": round(real / positions, 4) if positions else None,
        "loss_first": curve[0]["loss"],
        "loss_last": curve[-1]["loss"],
        "curve": curve,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens_seen / wall, 1) if wall else None,
    }
    export(model, tokenizer, init_checkpoint, config, final, json.dumps(summary, indent=2), rank)
    if rank == 0:
        resume.remove(out_dir)
    if world > 1:
        dist.barrier()
    return final, summary
