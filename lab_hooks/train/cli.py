"""`lab-hooks train`: a PR's phase-2 (and, for knowledge, phase-1) training with replay.

    lab-hooks train --base origin/main --head HEAD --student embedded:smollm2-135m-instruct

The PR's leaves come from the diff (--base/--head; without --base, every leaf in --data),
their new samples from `lab-hooks generate`'s output dir (--data), the replay buffer and
the starting checkpoint from the store ("main/replay", "main/checkpoint"; the student
when main has none). The candidate lands in the store; its key, path and summary are
printed. Runs as is under `torchrun --nproc_per_node N -m lab_hooks train ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _err(message: str) -> int:
    print(f"lab-hooks train: {message}", file=sys.stderr)
    return 2


def student_dir(spec: str) -> Path:
    """An HF checkpoint dir from a model spec: embedded:NAME, hf:/path or a path."""
    if spec.startswith("embedded:"):
        from lab_hooks.models.embedded import embedded_checkpoint

        return embedded_checkpoint(spec.removeprefix("embedded:"))
    return Path(spec.removeprefix("hf:")).expanduser()


def _pr_leaves(repo: str, base: str, head: str | None) -> tuple[list[str], list[str]]:
    """(leaves with new data, leaves whose old data must not be replayed)."""
    from lab_hooks.diff import diff_taxonomy
    from lab_hooks.taxonomy.leaf import taxonomy_path

    changed, removed = [], []
    for change in diff_taxonomy(repo, base, head).leaves:
        if change.status != "added":
            old = change.old_path or change.path
            removed.append(os.path.dirname(taxonomy_path(old)[0]))
        if change.status != "deleted":
            changed.append(change.name)
    return changed, removed


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lab-hooks train", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", metavar="REF", help="train the leaves changed since REF (merge-base)")
    p.add_argument("--head", metavar="REF", help="with --base: the PR head (default: the working tree)")
    p.add_argument("--repo", default=".", help="taxonomy repository (default: .)")
    p.add_argument("--student", default="embedded:smollm2-135m-instruct", metavar="SPEC",
                   help="model to start from when main has no checkpoint (embedded:NAME, hf:/path)")
    p.add_argument("--method", choices=("full", "lora", "osf"), default="full")
    p.add_argument("--data", default="lab-hooks-data", metavar="DIR", help="`lab-hooks generate` output dir")
    p.add_argument("--external", nargs="*", default=[], metavar="NAME=FILE.jsonl", help="extra replay datasets")
    p.add_argument("--replay-ratio", type=float, default=1.0, help="replay samples per new sample (default 1.0)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-5 full, 2e-4 lora)")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="samples per optimizer step, all processes")
    p.add_argument("--max-tokens", type=int, default=4096, help="tokens per packed row")
    p.add_argument("--max-seq-len", type=int, default=2048)
    p.add_argument("--save-every", type=int, default=25, metavar="STEPS")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--nproc", type=int, default=0,
                   help="processes (GPUs) to train with under torchrun; default: every visible GPU, 1 without GPU")
    p.add_argument("--cpu-offload", action="store_true", help="FSDP2 keeps shards and optimizer state in host memory")
    p.add_argument("--activation-checkpointing", action="store_true", help="recompute activations in backward")
    p.add_argument("--plan", action="store_true",
                   help="print the per-GPU memory plan of training --student under FSDP2 and the fewest GPUs that fit; "
                        "train nothing (--student may also be a config.json)")
    p.add_argument("--gpu-memory", type=float, metavar="GIB", help="with --plan: memory of one GPU (default: "
                   "the visible GPU's, else 80)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.head and not args.base:
        p.error("--head needs --base")
    if args.replay_ratio < 0:
        p.error("--replay-ratio must be >= 0")

    from lab_hooks.diff import DiffError
    from lab_hooks.store import Store, StoreError
    from lab_hooks.train.loop import TrainConfig, TrainError
    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.replay import load_buffer, read_generated, read_jsonl

    config = TrainConfig(
        method=args.method,
        learning_rate=args.lr or (2e-4 if args.method == "lora" else 2e-5),
        warmup_steps=args.warmup_steps,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        max_seq_len=args.max_seq_len,
        save_every=args.save_every,
        seed=args.seed,
        nproc=args.nproc,
        cpu_offload=args.cpu_offload,
        activation_checkpointing=args.activation_checkpointing,
        progress=not args.no_progress,
    )
    if args.plan:
        from lab_hooks.train import fsdp, plan

        try:
            print(plan.main(student_dir(args.student), config, fsdp.processes(config), args.gpu_memory,
                            args.format == "json"))
        except (OSError, ValueError) as exc:
            return _err(f"--plan: {str(exc).splitlines()[0]}")
        return 0
    try:
        generated = read_generated(Path(args.data))
        if args.base:
            changed, removed = _pr_leaves(args.repo, args.base, args.head)
        else:
            changed, removed = sorted(generated), []
        missing = [leaf for leaf in changed if leaf not in generated]
        if missing:
            return _err(f"no generated data for {missing[0]} in {args.data}/leaves (run `lab-hooks generate` first)")
        external = {}
        for item in args.external:
            name, sep, file = item.partition("=")
            if not sep:
                return _err(f"--external {item!r}: expected NAME=FILE.jsonl")
            external[name] = read_jsonl(Path(file))
        rank = int(os.environ.get("RANK", "0"))
        store = Store()
        with store.run("train", {"student": args.student, "rank": rank}):  # no gc meanwhile
            key, checkpoint, summary = train_candidate(
                store, load_buffer(store), {leaf: generated[leaf] for leaf in changed}, removed,
                student_dir(args.student), config, external=external, replay_ratio=args.replay_ratio,
                is_main_process=rank == 0,
            )
    except (TrainError, DiffError, StoreError, ValueError, OSError) as exc:
        return _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if rank != 0:
        return 0
    if args.format == "json":
        print(json.dumps({"key": key, "checkpoint": str(checkpoint), **summary}, indent=2, default=str))
    elif key is None:
        print("nothing to train: the PR changes no leaf with data")
    else:
        for phase in summary["phases"]:
            print(f"phase {phase['phase']}: {phase['new_samples']} new + {phase['replay_samples']} replay samples, "
                  f"{phase['steps']} steps, loss {phase['loss_first']:.4f} -> {phase['loss_last']:.4f}, "
                  f"{phase['tokens_per_s']} tokens/s, dropped {phase['dropped'] or 'none'}")
        print(f"candidate {key[:12]}: {checkpoint}")
    return 0
