"""`lab-hooks validate`: the pre-commit hook. Exit 0 clean (warnings allowed),
1 when any error is found or the input cannot be used (a bad --base ref, config or
baseline), 2 for usage or internal errors."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from lab_hooks.checks.findings import FORMATS, render, summary_line
from lab_hooks.flags import Parser, command


def build_parser() -> argparse.ArgumentParser:
    # argparse builds a help formatter for every add_argument, and the default one
    # imports shutil for the terminal's width: a fixed width while the arguments are
    # added keeps that off the hook's start-up; help and usage errors get the real one.
    parser = Parser(
        prog="lab-hooks validate",
        description="Check taxonomy leaves (qna.yaml) for schema, lint, path and content problems.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, width=80),
    )
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="qna.yaml files, attribution.txt files (check the leaf beside them) or directories")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format (default: github when GITHUB_ACTIONS is set, else text)")
    parser.add_argument("--root", default=None,
                        help="the taxonomy repository's root (default: the folder holding the files' "
                             "compositional_skills/, foundational_skills/ or knowledge/)")
    parser.add_argument("--semantic", action="store_true",
                        help="also report paraphrased seeds (all-MiniLM-L6-v2 embeddings; needs the [ml] extra)")
    parser.add_argument("--base", metavar="REF",
                        help="errors only for what changed since the working tree forked from REF: findings "
                             "the base already had are listed as warnings marked pre-existing. Without FILE, "
                             "checks the leaves changed since then (the pre-commit hook passes HEAD; a PR job, "
                             "the PR's base branch)")
    parser.formatter_class = argparse.HelpFormatter
    return parser


def select_files(args: argparse.Namespace, base) -> tuple[list[str], str | None]:
    """The files this run checks and the taxonomy root (None: found from the files).
    With a base and no FILE, the leaves changed since the base."""
    from lab_hooks.checks.engine import expand

    if args.files or base is None:
        return expand(args.files), args.root
    from lab_hooks.checks.gitbase import changed_leaf_files, repository_top

    root = args.root if args.root is not None else repository_top()
    return changed_leaf_files(base, root), root


def hook_base(base: str) -> str:
    """The base the hook's `--base HEAD` means: HEAD for a commit, but the first ref of
    `pre-commit run --from-ref A --to-ref B` (a CI job checking a range: HEAD is B there)."""
    return os.environ.get("PRE_COMMIT_FROM_REF") or base if base == "HEAD" else base


def check(args: argparse.Namespace):
    """The files checked and their report; the errors the baseline lists, and with
    `--base` those the base had, are let through as warnings."""
    from lab_hooks.checks import baseline
    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files, find_root
    from lab_hooks.checks.registry import load_checks

    base = None
    if args.base:
        from lab_hooks.checks.gitbase import GitBase

        base = GitBase(hook_base(args.base))
    try:
        files, root = select_files(args, base)
        root = os.path.relpath(root if root is not None else find_root(files))
        load_checks()  # rules must be registered before the config names them
        settings = base.files(root) if base is not None else None  # a change does not relax its own rules
        config = load_config(root, settings)
        config.semantic = args.semantic
        report = check_files(files, root, config)
        known = baseline.read(root, settings)
        if known is not None:
            stale = baseline.apply(report, root, known)
            if stale:
                print(f"lab-hooks validate: {stale:,} {baseline.BASELINE_FILE} entries of these leaves no longer "
                      "occur: run `lab-hooks baseline` to drop them", file=sys.stderr)
        if base is not None:
            from lab_hooks.checks.ratchet import base_states, mark_pre_existing

            mark_pre_existing(report, root, config, base_states(base, files, root))
        return files, report
    finally:
        if base is not None:
            base.close()


@command("lab-hooks validate")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") else "text")
    if args.root is not None and not os.path.isdir(args.root):
        parser.error(f"--root {args.root}: not a directory")
    # One run allocates a whole tree's nodes, marks and findings and frees them by reference
    # counting (they hold no cycles: peak memory is the same without the collector, which
    # would only walk that growing heap again and again: a fifth of a whole tree's run).
    gc.disable()
    files, report = check(args)  # a bad base, config or baseline: an InputError, one line, exit 1
    out = render(report.findings, fmt, report.files, report.metrics)
    try:
        if out:
            print(out, flush=True)
    except BrokenPipeError:  # e.g. piped into `head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for problem in report.internal_errors:
        print(f"lab-hooks validate: internal error: {problem}", file=sys.stderr)
    if fmt == "text":
        print(summary_line(report.findings, len(files)), file=sys.stderr)
    if report.internal_errors:
        return 2
    return 1 if report.errors else 0
