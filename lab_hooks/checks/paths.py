"""Where a leaf lives: its file name, its folder names, and no leaf inside another."""

from __future__ import annotations

import os
import posixpath
from typing import Iterator

from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import ERROR, Finding
from lab_hooks.checks.registry import leaf_check, rule
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, Leaf

FILE_NAME = rule("LH301", "file-name", ERROR, "a leaf file must be named `qna.yaml` (`qna.yml` is flagged)")
PATH_NAME = rule("LH302", "path-name", ERROR, "a folder name in the taxonomy path has upper-case letters or spaces")
NESTED_LEAF = rule("LH303", "nested-leaf", ERROR, "a leaf folder holds another leaf below it")
OUTSIDE_TREES = rule("LH304", "outside-trees", ERROR, "the leaf is not under compositional_skills/, foundational_skills/ or knowledge/")


@leaf_check
def check_file_name(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    name = posixpath.basename(leaf.path)
    if name == "qna.yml":
        yield FILE_NAME.at(leaf.file, (1, 1), "named qna.yml; rename it to qna.yaml (InstructLab reads only qna.yaml)")
    elif name not in LEAF_NAMES:
        yield FILE_NAME.at(leaf.file, (1, 1), f"named {name}; a leaf file must be named qna.yaml")


@leaf_check
def check_path_names(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    if leaf.kind is None:
        where = ", ".join(f"{t}/" for t in sorted(TOP_LEVELS))
        yield OUTSIDE_TREES.at(leaf.file, (1, 1), f"{leaf.path} is not under {where}")
        return
    for part in leaf.name.split("/"):
        if part != part.lower() or any(c.isspace() for c in part):
            yield PATH_NAME.at(leaf.file, (1, 1), f"folder {part!r} in {leaf.name}/: use lower case and no spaces "
                                                  f"(e.g. {'_'.join(part.lower().split())!r})")


def _leaf_dirs(ctx: Context) -> set[str]:
    """The folder (absolute) of every leaf under the root and of every leaf being checked."""
    dirs = {os.path.dirname(os.path.abspath(p)) for p in ctx.leaf_files().values()}
    return dirs | {os.path.dirname(os.path.abspath(leaf.file)) for leaf in ctx.checked}


def _ancestors(folder: str) -> Iterator[str]:
    """The folders above an absolute folder, nearest first (string slicing: this runs per leaf)."""
    cut = folder.rfind(os.sep)
    while cut > 0:
        folder = folder[:cut]
        yield folder
        cut = folder.rfind(os.sep)


@leaf_check
def check_nesting(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    dirs = ctx.memo("paths.leaf_dirs", lambda: _leaf_dirs(ctx))
    below = ctx.memo("paths.below", lambda: _below(dirs))
    own = os.path.dirname(os.path.abspath(leaf.file))
    parent = next((d for d in _ancestors(own) if d in dirs), None)
    if parent is not None:
        yield NESTED_LEAF.at(leaf.file, (1, 1), f"inside the leaf folder {os.path.relpath(parent)}/; "
                                                "a leaf folder must not hold other leaves")
        return
    if own in below:
        inner = sorted(below[own])
        more = f" and {len(inner) - 1} more" if len(inner) > 1 else ""
        yield NESTED_LEAF.at(leaf.file, (1, 1), f"holds another leaf below it ({os.path.relpath(inner[0])}/{more}); "
                                                "leaves belong only at the ends of the tree")


def _below(dirs: set[str]) -> dict[str, list[str]]:
    """Leaf folder -> the leaf folders strictly below it."""
    out: dict[str, list[str]] = {}
    for d in dirs:
        for parent in _ancestors(d):
            if parent in dirs:
                out.setdefault(parent, []).append(d)
    return out
