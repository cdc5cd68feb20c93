"""The trainer: one phase, read top to bottom (nanoGPT style).

`train(samples, init_checkpoint, out_dir, config)` fine-tunes the HF checkpoint on the
samples (full or LoRA), writes resume points into `out_dir`, and ends with
`out_dir/model`: an HF dir (safetensors, tokenizer, chat template; LoRA merged) that
transformers and vLLM load, with `summary.json` beside the weights.

- Optimizer: AdamW; learning rate warms up linearly, then stays constant (the LAB
  paper found decay to zero between phases harmful).
- A step is `batch_size` samples (across all processes): packed into rows of at most
  `max_tokens`, gradients accumulated over the rows, loss = sum over trained tokens /
  trained tokens in the step. So the gradient does not depend on how the step was
  packed or split across processes.
- Data order: a permutation per epoch drawn from (seed, epoch), so the step number
  alone says what comes next.
- Exact resume: every `save_every` steps one file holds trainable weights, optimizer,
  scheduler, RNG states and step, written to a temporary name, fsynced and renamed. A
  run killed anywhere (kill -9 included) restarts from it; on CPU it ends with weights
  identical to an uninterrupted run.
- Scale-out: under `torchrun --nproc_per_node N` each process trains on a token-balanced
  share of every step and the gradients are summed with all_reduce before the optimizer
  step (data parallel, gloo on CPU, NCCL on GPU): same global batch, same update.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from lab_hooks.errors import LabHooksError
from lab_hooks.train.config import TrainConfig
from lab_hooks.train.data import IGNORE, first_fit_decreasing, packed_row, prepare, split_across_ranks
from lab_hooks.train.mix import digest


class TrainError(LabHooksError, RuntimeError):
    """A run that cannot start or go on; the message is one line for the user."""


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group torchrun set up."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank() if world > 1 else 0), world, device


def _autocast(config: TrainConfig, device: torch.device):
    bf16 = config.dtype == "bf16" or (
        config.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_model(init_checkpoint: Path, config: TrainConfig, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (init_checkpoint / "config.json").is_file():
        raise TrainError(f"{init_checkpoint}: not a Hugging Face checkpoint (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(init_checkpoint, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(init_checkpoint, dtype=torch.float32, attn_implementation="sdpa",
                                                 local_files_only=True)
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    elif config.method != "full":
        raise TrainError(f"unknown training method {config.method!r} (full or lora)")
    return tokenizer, model.to(device)


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
    rank, world, device = _distributed()
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    # --- data: render, mask, drop what cannot train ------------------------------------------
    tokenizer, model = _load_model(init_checkpoint, config, device)
    prepared = prepare(samples, tokenizer, config.max_seq_len, config.min_trained_tokens)
    data = prepared.samples
    if not data:
        raise TrainError(f"no trainable samples among {len(samples)} (dropped: {prepared.dropped})")
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total_steps = config.max_steps or config.epochs * steps_per_epoch

    # --- optimizer: AdamW, linear warm-up then constant --------------------------------------
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(config.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))

    # --- resume from the last saved step, if this very run saved one -------------------------
    run_id = hashlib.sha256(
        json.dumps([config.identity(), str(init_checkpoint.resolve()), [digest(s) for s in samples]]).encode()
    ).hexdigest()
    resume_file = out_dir / "resume.pt"
    start, losses = 0, []
    if resume_file.is_file():
        state = torch.load(resume_file, weights_only=False, map_location=device)
        if state["run"] != run_id:
            raise TrainError(f"{out_dir} holds a different run (other data, model or config): remove it or pick another")
        model.load_state_dict(state["weights"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"][rank])
        start, losses = state["step"], state["losses"]
    out_dir.mkdir(parents=True, exist_ok=True)

    # --- the loop ----------------------------------------------------------------------------
    from tqdm import tqdm

    model.train()
    bar = tqdm(total=total_steps, initial=start, disable=rank != 0 or not config.progress, unit="step")
    tokens_seen, real, positions, began = 0, 0, 0, time.perf_counter()  # real/positions: padding check
    for step in range(start, total_steps):
        epoch, index = divmod(step, steps_per_epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
        batch = [data[i] for i in order[index * config.batch_size : (index + 1) * config.batch_size]]
        step_trained = sum(s.trained_tokens for s in batch)
        share = [batch[i] for i in split_across_ranks([len(s.input_ids) for s in batch], world)[rank]]
        bins = first_fit_decreasing([len(s.input_ids) for s in share], config.max_tokens)

        loss_sum = torch.zeros((), device=device)
        for bin_ in bins:
            row = packed_row([share[i] for i in bin_])
            positions += len(row["input_ids"])
            with _autocast(config, device):
                loss, _ = row_loss(model, row, device)
            (loss / step_trained).backward()
            loss_sum += loss.detach()
            real += sum(len(share[i].input_ids) for i in bin_)
        if world > 1:  # data parallel: sum every process's share of the step's gradient
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
            dist.all_reduce(loss_sum)
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        losses.append(loss_sum.item() / step_trained)
        tokens_seen += sum(len(s.input_ids) for s in batch)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", tok_s=f"{tokens_seen / (time.perf_counter() - began):.0f}")
        bar.update()
        done = step + 1
        if done % config.save_every == 0 and done < total_steps:
            rng = [None] * world
            if world > 1:
                dist.all_gather_object(rng, _rng_state())
            else:
                rng = [_rng_state()]
            if rank == 0:
                weights = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
                _atomic_save(
                    {
                        "run": run_id,
                        "step": done,
                        "losses": losses,
                        "weights": weights,
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": rng,
                    },
                    resume_file,
                )
            if world > 1:
                dist.barrier()
    bar.close()
    wall = time.perf_counter() - began

    # --- the served checkpoint: an HF dir, LoRA merged ---------------------------------------
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
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens_seen / wall, 1) if wall else None,
    }
    if rank == 0:
        served = model.merge_and_unload() if config.method == "lora" else model
        tmp = out_dir / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        served.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        resume_file.unlink(missing_ok=True)
    if world > 1:
        dist.barrier()
    return final, summary
