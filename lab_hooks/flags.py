"""Command-line pieces the subcommands share: argparse types and the flags of common options."""

from __future__ import annotations

import argparse


def at_least(low: int):
    """An argparse type: an integer >= low (a zero token budget is a usage error, not a crash later)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """The training flags `pr` and `promote` share."""
    p.add_argument("--method", choices=("full", "lora"), default="full")
    p.add_argument("--max-steps", type=at_least(1), help="cap the optimizer steps per phase")
    p.add_argument("--learning-rate", type=float, metavar="LR", help="peak learning rate (default 2e-5)")
    p.add_argument("--warmup-steps", type=at_least(0), help="linear warm-up steps (default 10)")


def train_settings(args: argparse.Namespace) -> dict:
    """The training options `pr` and `promote` share, from their parsed flags."""
    given = {"max_steps": args.max_steps, "learning_rate": args.learning_rate, "warmup_steps": args.warmup_steps}
    return {"method": args.method, **{k: v for k, v in given.items() if v is not None}}
