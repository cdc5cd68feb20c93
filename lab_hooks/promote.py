"""`lab-hooks promote --base main`: after a merge, main's checkpoint and replay buffer advance
(the promotion itself is lab_hooks.loop.promote)."""

from __future__ import annotations

import argparse

from lab_hooks.flags import Parser, add_model_flags, add_replay_flag, add_train_flags, alias, at_least, command, train_config
from lab_hooks.loop.promote import promote
from lab_hooks.loop.run import PrOptions
from lab_hooks.report.escape import log_safe


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lab-hooks promote", description=__doc__.splitlines()[0])
    p.add_argument("--base", default="main", metavar="REF",
                   help="the branch PRs merge into, after a merge (default: main); main's model advances to it")
    alias(p, "--ref", "base")
    p.add_argument("--repo", default=".", help="the taxonomy git repository (default: .)")
    add_model_flags(p)
    p.add_argument("--samples-per-seed", type=at_least(1), default=PrOptions.samples_per_seed)
    add_replay_flag(p)
    p.add_argument("--sdg-max-tokens", type=at_least(1),
                   help="teacher tokens per generation (default: the pipeline's); as `pr` was given, so the data is shared")
    p.add_argument("--no-progress", action="store_true")
    add_train_flags(p)
    return p


def options(args: argparse.Namespace) -> PrOptions:
    config = train_config(args, progress=not args.no_progress)
    return PrOptions(teacher=args.teacher, student=args.student, samples_per_seed=args.samples_per_seed,
                     sdg_max_tokens=args.sdg_max_tokens, seed=config.seed, replay_ratio=args.replay_ratio, train=config, progress=not args.no_progress)


@command("lab-hooks promote")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = promote(args.repo, args.base, options=options(args))
    print(log_safe(f"lab-hooks promote: {result['action']} {result['commit'][:12]} -> checkpoint "
                   f"{str(result['checkpoint'])[:12]}"))
    return 0
