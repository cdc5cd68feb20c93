"""`lab-hooks SUBCOMMAND ...`: a thin dispatcher.

Each subcommand is a `main(argv) -> int` in its own module, imported only when
asked for, so the hook path (`validate`) never pays for the ML stack.
Exit codes (lab_hooks.flags): 0 done, 1 the input is wrong (findings, a bad leaf or
ref), 2 usage, a missing extra, or anything else that stopped the run.
"""

from __future__ import annotations

import importlib
import os
import sys

from lab_hooks import __version__
from lab_hooks.flags import command

# name -> "module:function"; each stage's package adds its line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("lab_hooks.checks.validate:main", "check qna.yaml leaves (the pre-commit hook)"),
    "baseline": ("lab_hooks.checks.baseline:main", "record today's errors so that only new ones block"),
    "diff": ("lab_hooks.diff.cli:main", "list the leaves a branch or the working tree changes"),
    "generate": ("lab_hooks.sdg.cli:main", "synthetic data (LAB pipelines) for changed or given leaves"),
    "preview": ("lab_hooks.sdg.cli:preview", "a few generated samples for one leaf, on the embedded model"),
    "train": ("lab_hooks.train.cli:main", "train a PR's changed leaves with replay from main's checkpoint"),
    "eval": ("lab_hooks.eval.cli:main", "MT-Bench and branch evaluation: candidate vs base, deltas with CIs"),
    "pr": ("lab_hooks.pr:main", "run the PR loop: diff, validate, generate, train, evaluate, report"),
    "comment": ("lab_hooks.report.publish:main", "post a PR run's results as the one sticky PR comment"),
    "promote": ("lab_hooks.promote:main", "advance main's checkpoint and replay buffer after a merge"),
    "models": ("lab_hooks.models.cli:main", "fetch the pinned model and data assets once (pull), list them (ls)"),
    "store": ("lab_hooks.store.cli:main", "list, verify and garbage-collect the run store"),
}


def _usage() -> str:
    width = max((len(n) for n in COMMANDS), default=0)
    lines = [f"usage: lab-hooks {{{','.join(COMMANDS)}}} ...", ""]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        return _dispatch(sys.argv[1:] if argv is None else list(argv))
    except BrokenPipeError:  # `lab-hooks ... | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"lab-hooks {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lab-hooks: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    module, _, func = COMMANDS[name][0].partition(":")

    @command(f"lab-hooks {name}")
    def run(argv: list[str]) -> int:  # importing the module may already need an extra
        return getattr(importlib.import_module(module), func or "main")(argv)

    return run(rest)
