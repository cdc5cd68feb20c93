"""`lab-hooks validate`: the pre-commit hook. Exit 0 clean (warnings allowed),
1 when any error is found or the input cannot be used (a bad --base ref or config),
2 for usage or internal errors."""

from __future__ import annotations

import argparse
import os
import sys

from lab_hooks.checks.findings import FORMATS, render, summary_line
from lab_hooks.flags import command


def build_parser() -> argparse.ArgumentParser:
    # argparse builds a help formatter for every add_argument, and the default one
    # imports shutil for the terminal's width: a fixed width while the arguments are
    # added keeps that off the hook's start-up; help and usage errors get the real one.
    parser = argparse.ArgumentParser(
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
                        help="also check the leaves the working tree changes since it forked from REF "
                             "(staged, unstaged, untracked; what a PR's validation job runs)")
    parser.formatter_class = argparse.HelpFormatter
    return parser


def select_files(args: argparse.Namespace) -> list[str]:
    """The files this run checks (ways to choose them, like a git range, plug in here)."""
    from lab_hooks.checks.engine import expand

    files = expand(args.files)
    if args.base:
        from lab_hooks.diff import diff_taxonomy, open_repo

        top = open_repo(".").working_tree_dir
        root = os.path.relpath(os.path.abspath(args.root), top) if args.root else ""
        with diff_taxonomy(top, args.base, root=root) as changes:
            # A leaf file that is a symlink is checked too: the checks report it (LH001), never skip it.
            paths = [c.path for c in changes.present] + [s.path for s in changes.skipped_leaves]
        # Relative to the working directory, like the paths a user or pre-commit passes: at
        # the repository's top (Actions, pre-commit) that is the repo-relative path that
        # GitHub annotations and the PR comment's links need, and a leaf named both ways
        # is checked once.
        files += [os.path.relpath(os.path.join(top, path)) for path in paths]
    return list(dict.fromkeys(files))


@command("lab-hooks validate")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") else "text")
    if args.root is not None and not os.path.isdir(args.root):
        parser.error(f"--root {args.root}: not a directory")

    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files, find_root
    from lab_hooks.checks.registry import load_checks

    files = select_files(args)
    root = args.root if args.root is not None else find_root(files)
    load_checks()  # rules must be registered before the config names them
    config = load_config(root)
    config.semantic = args.semantic
    report = check_files(files, root, config)
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
