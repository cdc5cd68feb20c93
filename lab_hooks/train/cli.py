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
from pathlib import Path

from lab_hooks.errors import InputError
from lab_hooks.flags import GENERATED, Parser, add_replay_flag, add_train_flags, command, train_config
from lab_hooks.models.specs import EMBEDDED_SPEC


def student_dir(spec: str) -> Path:
    """An HF checkpoint dir from a model spec: embedded:NAME, hf:/path or a path."""
    if spec.startswith("embedded:"):
        from lab_hooks.models.embedded import embedded_checkpoint

        return embedded_checkpoint(spec.removeprefix("embedded:"))
    return Path(spec.removeprefix("hf:")).expanduser()


def _pr_leaves(repo: str, base: str, head: str | None) -> tuple[list[str], list[str]]:
    """(leaves with new data, leaves whose old data must not be replayed)."""
    from lab_hooks.diff import diff_taxonomy

    changes = diff_taxonomy(repo, base, head)
    return [c.name for c in changes.present], sorted(changes.retired)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lab-hooks train", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", metavar="REF", help="train the leaves changed since REF (merge-base)")
    p.add_argument("--head", metavar="REF", help="with --base: the PR head (default: the working tree)")
    p.add_argument("--repo", default=".", help="taxonomy repository (default: .)")
    p.add_argument("--student", default=EMBEDDED_SPEC, metavar="SPEC",
                   help="model to start from when main has no checkpoint (embedded:NAME, hf:/path)")
    p.add_argument("--data", default=GENERATED, metavar="DIR", help=f"`lab-hooks generate` output dir (default {GENERATED})")
    p.add_argument("--external", nargs="*", default=[], metavar="NAME=FILE.jsonl", help="extra replay datasets")
    add_replay_flag(p)
    p.add_argument("--plan", action="store_true",
                   help="print the per-GPU memory plan of training --student under FSDP2 and the fewest GPUs that fit; "
                        "train nothing (--student may also be a config.json)")
    p.add_argument("--gpu-memory", type=float, metavar="GIB",
                   help="with --plan: memory of one GPU (default: the visible GPU's, else 80)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-progress", action="store_true")
    add_train_flags(p)
    return p


def build_config(args: argparse.Namespace):
    """The TrainConfig the flags describe (the same as `pr` and `promote` build from them)."""
    return train_config(args, progress=not args.no_progress)


@command("lab-hooks train")
def main(argv: list[str]) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.head and not args.base:
        p.error("--head needs --base")
    if any("=" not in item for item in args.external):
        p.error(f"--external {next(i for i in args.external if '=' not in i)!r}: expected NAME=FILE.jsonl")
    config = build_config(args)
    if args.plan:
        from lab_hooks.train import fsdp, plan

        try:
            print(plan.main(student_dir(args.student), config, fsdp.processes(config), args.gpu_memory,
                            args.format == "json"))
        except (OSError, ValueError) as exc:
            raise InputError(f"--plan: {str(exc).splitlines()[0]}") from None
        return 0

    from lab_hooks.store import Store
    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.replay import load_datasets, read_generated, read_jsonl, read_main

    if not args.base and not Path(args.data).is_dir():  # (with --base, a PR that only deletes needs no data)
        raise InputError(f"--data {args.data}: not a directory (run `lab-hooks generate` first)")
    generated = read_generated(Path(args.data))
    changed, removed = _pr_leaves(args.repo, args.base, args.head) if args.base else (sorted(generated), [])
    missing = [leaf for leaf in changed if leaf not in generated]
    if missing:
        raise InputError(f"no generated data for {missing[0]} in {args.data}/leaves (run `lab-hooks generate` first)")
    external = {name: read_jsonl(Path(file)) for name, _, file in (item.partition("=") for item in args.external)}
    rank = int(os.environ.get("RANK", "0"))
    store = Store()
    with store.run("train", {"student": args.student, "rank": rank}):  # no gc meanwhile
        main_state = read_main(store)
        key, checkpoint, summary = train_candidate(
            store, load_datasets(store, main_state.buffer), {leaf: generated[leaf] for leaf in changed}, removed,
            student_dir(args.student), config, main_key=main_state.checkpoint, external=external,
            replay_ratio=args.replay_ratio, is_main_process=rank == 0,
        )
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
