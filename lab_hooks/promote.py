"""`lab-hooks promote --ref main`: after a merge, main's checkpoint and replay buffer advance
(the promotion itself is lab_hooks.loop.promote)."""

from __future__ import annotations

import argparse
import sys

from lab_hooks.diff import DiffError
from lab_hooks.flags import at_least, train_settings
from lab_hooks.loop.promote import PromoteError, promote
from lab_hooks.loop.run import PrOptions
from lab_hooks.report.escape import log_safe
from lab_hooks.store import StoreError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab-hooks promote", description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="main", help="the merged branch or commit (default: main)")
    p.add_argument("--repo", default=".")
    p.add_argument("--teacher", default="embedded:smollm2-135m-instruct")
    p.add_argument("--student", default="embedded:smollm2-135m-instruct")
    p.add_argument("--samples-per-seed", type=at_least(1), default=3)
    p.add_argument("--replay-ratio", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("full", "lora"), default="full")
    p.add_argument("--max-steps", type=at_least(1))
    p.add_argument("--sdg-max-tokens", type=at_least(1),
                   help="teacher tokens per generation (default: the pipeline's); as `pr` was given, so the data is shared")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    train = train_settings(args)
    opts = PrOptions(teacher=args.teacher, student=args.student, samples_per_seed=args.samples_per_seed,
                     sdg_max_tokens=args.sdg_max_tokens, seed=args.seed, replay_ratio=args.replay_ratio, train=train)
    try:
        result = promote(args.repo, args.ref, options=opts)
    except (PromoteError, DiffError, StoreError, ValueError) as e:
        print(log_safe(f"lab-hooks promote: {e}"), file=sys.stderr)
        return 1
    print(log_safe(f"lab-hooks promote: {result['action']} {result['commit'][:12]} -> checkpoint "
                   f"{str(result['checkpoint'])[:12]}"))
    return 0
