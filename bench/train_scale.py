"""Scale-out on CPU: FSDP2 vs the hand-rolled loop it replaced, and the memory plan vs measured peaks.

    python bench/train_scale.py --part speed     # tokens/s and peak RSS, world 1 and 2, ours and hand-rolled
    python bench/train_scale.py --part memory    # lab-hooks train --plan vs peak RSS, world 1 and 2
    python bench/train_scale.py --part memory --tokens 1024   # one row length per run (shorter runs)

speed: the same samples (corpus seeds, bench/corpus_samples.py), config and model (the
embedded SmolLM2-135M-Instruct) trained four ways in one run: our loop in one process
(2 threads) and under torchrun with 2 processes (FSDP2, gloo, 1 thread each), and the
hand-rolled data-parallel loop of commit HANDROLLED (every process a full replica,
one all_reduce per parameter), read from git and run the same two ways. Printed:
tokens/s of the training loop, and each process's peak RSS (VmHWM).

memory: each run loads the model, shards it under torchrun, and takes STEPS optimizer
steps on one packed row of S tokens, all trained (the plan's worst case); measured =
peak RSS - RSS before the model was loaded, per process. glibc is told to give large
blocks back to the system at once (MALLOC_MMAP_THRESHOLD_), so RSS follows live tensors.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HANDROLLED = "cb85aba"  # main before FSDP2: lab_hooks/train/loop.py with the per-parameter all_reduce
STEPS = 3
ENV = os.environ | {"MALLOC_MMAP_THRESHOLD_": "131072", "PYTHONPATH": str(ROOT)}


def rss(field: str = "VmHWM") -> int:
    """This process's resident memory (VmRSS) or its peak (VmHWM), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def handrolled_module(work: Path):
    """The replaced trainer, as it was at HANDROLLED, imported from a temporary file."""
    import importlib.util

    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{HANDROLLED}:lab_hooks/train/loop.py"],
                            capture_output=True, text=True, check=True).stdout
    path = work / "handrolled_loop.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("handrolled_loop", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def worker(kind: str, job: dict) -> None:
    """One training run (one rank of it under torchrun); writes {summary, peak RSS} per rank."""
    import torch

    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(job["threads"])
    samples = json.loads(Path(job["samples"]).read_text())
    fields = {k: job["config"][k] for k in ("batch_size", "max_tokens", "max_seq_len", "learning_rate",
                                            "warmup_steps", "epochs")}
    if kind == "ours":
        from lab_hooks.train.loop import TrainConfig, train
    else:
        module = handrolled_module(Path(job["out"]))
        TrainConfig, train = module.TrainConfig, module.train  # noqa: N806
    _, summary = train(samples, job["model"], Path(job["out"]) / "run",
                       TrainConfig(**fields, save_every=10**9, progress=False))
    result = {"tokens_per_s": summary["tokens_per_s"], "wall_s": summary["wall_s"], "steps": summary["steps"],
              "loss_last": summary["loss_last"], "peak_rss": rss()}
    Path(job["out"], f"result-{rank}.json").write_text(json.dumps(result))


def memory_worker(job: dict) -> None:
    """Load, shard (under torchrun), STEPS steps on one all-trained row of S tokens; peak vs the plan."""
    import torch
    import torch.distributed as dist

    from lab_hooks.train import fsdp, plan
    from lab_hooks.train.loop import TrainConfig, row_loss
    from lab_hooks.train.model import load_model

    torch.set_num_threads(job["threads"])
    config = TrainConfig(max_tokens=job["tokens"], activation_checkpointing=job["checkpointing"])
    rank, world, device = fsdp.join()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = rss("VmRSS")
    _, model = load_model(Path(job["model"]), config, device)
    if dist.is_initialized():
        model = fsdp.shard(model, config, device)
    model.train()  # as the trainer does: activation checkpointing acts in training mode only
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    ids = random.Random(rank).choices(range(100, 20000), k=job["tokens"])
    row = {"input_ids": ids, "labels": ids, "position_ids": list(range(len(ids)))}
    for _ in range(STEPS):
        loss, count = row_loss(model, row, device)
        (loss / count).backward()
        fsdp.clip_grad_norm(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = rss() - before
    shape = plan.model_shape(plan.read_config(Path(job["model"])), config)
    parts = plan.per_gpu(shape, world, config, 4, sharded=dist.is_initialized())
    Path(job["out"], f"result-{rank}.json").write_text(json.dumps({"measured": measured, "planned": parts}))


def launch(kind: str, job: dict, world: int) -> list[dict]:
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job))
    script = [str(Path(__file__).resolve()), "--worker", kind, str(out / "job.json")]
    if world == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", *script]
    subprocess.run(command, check=True, env=ENV | {"OMP_NUM_THREADS": str(job["threads"])})
    return [json.loads((out / f"result-{r}.json").read_text()) for r in range(world)]


def speed(args, work: Path) -> None:
    from corpus_samples import bench_inputs

    model, datasets = bench_inputs(args.model, args.data)
    pool = [s for rows in datasets.values() for s in rows]
    samples = random.Random(1).sample(pool, min(args.samples, len(pool)))
    (work / "samples.json").write_text(json.dumps(samples))
    config = {"batch_size": args.batch_size, "max_tokens": args.max_tokens, "max_seq_len": args.max_seq_len,
              "learning_rate": 2e-5, "warmup_steps": 2, "epochs": 1}
    print(f"model {model}; {len(samples)} samples, {args.batch_size} per step, one epoch, 2 cores")
    print(f"{'trainer':34s} {'tokens/s':>9s} {'loop wall':>10s} {'peak RSS per process':>24s} {'loss last':>10s}")
    for kind, world in (("ours", 1), ("ours", 2), ("handrolled", 1), ("handrolled", 2)):
        job = {"samples": str(work / "samples.json"), "model": str(model), "config": config,
               "threads": 2 // world, "out": str(work / f"{kind}-{world}")}
        results = launch(kind, job, world)
        name = {"ours": "FSDP2 loop" if world > 1 else "our loop, one process",
                "handrolled": f"hand-rolled ({HANDROLLED})"}[kind] + f", world {world}"
        peaks = " + ".join(f"{r['peak_rss'] / 2**30:.2f}" for r in results)
        first = results[0]
        print(f"{name:34s} {first['tokens_per_s']:9.1f} {first['wall_s']:9.1f}s {peaks + ' GiB':>24s} "
              f"{first['loss_last']:10.5f}", flush=True)


def memory(args, work: Path) -> None:
    from corpus_samples import bench_inputs

    model, _ = bench_inputs(args.model, args.data)
    print(f"model {model}; fp32 on CPU; {STEPS} steps on one all-trained row; per process, GiB")
    print(f"{'world':>5s} {'tokens':>6s} {'ckpt':>5s} {'measured':>9s} {'planned':>8s} {'ratio':>6s}   planned parts")
    for world in (1, 2):
        for tokens in args.tokens:
            for checkpointing in (False, True):
                job = {"model": str(model), "tokens": tokens, "checkpointing": checkpointing, "threads": 2 // world,
                       "out": str(work / f"memory-{world}-{tokens}-{checkpointing}")}
                for result in launch("memory", job, world)[:1]:
                    planned = sum(result["planned"].values())
                    parts = " ".join(f"{k} {v / 2**30:.2f}" for k, v in result["planned"].items() if v)
                    print(f"{world:5d} {tokens:6d} {'yes' if checkpointing else 'no':>5s} "
                          f"{result['measured'] / 2**30:9.2f} {planned / 2**30:8.2f} "
                          f"{result['measured'] / planned:6.2f}   {parts}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("speed", "memory"), required="--worker" not in sys.argv)
    p.add_argument("--model", type=Path, help="HF dir (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--data", type=Path, help="{leaf: [samples]} JSON (default: the shared corpus's seeds)")
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048], help="memory: row lengths to measure")
    p.add_argument("--worker", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, job = args.worker[0], json.loads(Path(args.worker[1]).read_text())
        memory_worker(job) if kind == "memory" else worker(kind, job)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-train-scale-") as work:
        (speed if args.part == "speed" else memory)(args, Path(work))
    print(f"\n{time.time() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
