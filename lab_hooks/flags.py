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


def train_settings(args: argparse.Namespace) -> dict:
    """The training options `pr` and `promote` share, from their parsed flags."""
    return {"method": args.method, **({"max_steps": args.max_steps} if args.max_steps else {})}
