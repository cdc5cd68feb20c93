"""`lab-hooks diff --base REF [--head REF]`: the leaves a change touches."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from lab_hooks.diff.changes import ChangeSet, diff_taxonomy
from lab_hooks.flags import Parser, command
from lab_hooks.taxonomy.leaf import TOP_LEVELS

_LETTER = {"added": "A", "modified": "M", "renamed": "R", "deleted": "D"}


def _text(diff: ChangeSet) -> str:
    lines = []
    for c in diff.leaves:
        where = f"{c.old_path} -> {c.path}" if c.status == "renamed" else c.path
        shas = f"{(c.old_blob_sha or '0' * 7)[:7]}..{(c.blob_sha or '0' * 7)[:7]}"
        extra = [r for r in c.reasons if r not in (c.path, c.old_path)]
        because = f"  (via {', '.join(extra)})" if extra else ""
        lines.append(f"{_LETTER[c.status]}  {where}  {shas}{because}")
    for s in diff.skipped:
        lines.append(f"{s.path}: warning: {s.reason}")
    counts = {s: sum(c.status == s for c in diff.leaves) for s in _LETTER}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no leaves changed"
    head = diff.head[:12] if diff.head else "the working tree"
    lines.append(f"{summary}: {head} since merge base {diff.base[:12]}")
    return "\n".join(lines)


def _json(diff: ChangeSet) -> str:
    return json.dumps({
        "merge_base": diff.base,
        "head": diff.head,
        "leaves": [{**asdict(c), "kind": c.kind.value if c.kind else None, "name": c.name} for c in diff.leaves],
        "skipped": [asdict(s) for s in diff.skipped],
    }, indent=2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lab-hooks diff", description=__doc__)
    parser.add_argument("--base", required=True, help="the branch the change goes into, e.g. origin/main")
    parser.add_argument("--head", help="the change's commit or branch (default: the working tree, "
                                       "staged, unstaged and untracked files included)")
    parser.add_argument("--repo", default=".", help="the git repository (default: the current one)")
    parser.add_argument("--root", default="", help="the taxonomy's folder in the repository (default: its root)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


@command("lab-hooks diff")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    diff = diff_taxonomy(args.repo, args.base, args.head, args.root)
    print(_json(diff) if args.format == "json" else _text(diff))
    top = diff.repo.working_tree_dir
    if top and not any(Path(top, args.root, name).is_dir() for name in TOP_LEVELS):
        print(f"lab-hooks diff: warning: no {', '.join(sorted(TOP_LEVELS))} folder in "
              f"{Path(top, args.root)}; pass --root with the taxonomy's folder", file=sys.stderr)
    return 0
