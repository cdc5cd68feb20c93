"""`lab-hooks promote --ref main`: after a merge, main's checkpoint and replay buffer advance
(the promotion itself is lab_hooks.loop.promote)."""

from __future__ import annotations

import argparse
import sys

from lab_hooks.diff import DiffError
from lab_hooks.flags import add_train_flags, at_least, train_settings
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
    add_train_flags(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--sdg-max-tokens", type=at_least(1),
                   help="teacher tokens per generation (default: the pipeline's); as `pr` was given, so the data is shared")
    return p


def options(args: argparse.Namespace) -> PrOptions:
    """The loop's options from parsed `lab-hooks promote` flags."""
    return PrOptions(teacher=args.teacher, student=args.student, samples_per_seed=args.samples_per_seed,
                     sdg_max_tokens=args.sdg_max_tokens, seed=args.seed, replay_ratio=args.replay_ratio,
                     train=train_settings(args), progress=not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        result = promote(args.repo, args.ref, options=options(args))
    except (PromoteError, DiffError, StoreError, ValueError) as e:
        print(log_safe(f"lab-hooks promote: {e}"), file=sys.stderr)
        return 1
    print(log_safe(f"lab-hooks promote: {result['action']} {result['commit'][:12]} -> checkpoint "
                   f"{str(result['checkpoint'])[:12]}"))
    return 0
