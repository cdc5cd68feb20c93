"""Where a leaf lives: its file name, its folder names, and no leaf inside another."""

from __future__ import annotations

import os
import posixpath
from bisect import bisect_left
from typing import Iterator

from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import ERROR, WARNING, Finding
from lab_hooks.checks.registry import leaf_check, rule
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, Leaf

FILE_NAME = rule("LH301", "file-name", ERROR, "a leaf file must be named `qna.yaml` (`qna.yml` is flagged)",
                 leaf_level=True)
PATH_NAME = rule("LH302", "path-name", WARNING, "a folder name in the taxonomy path has upper-case letters or spaces",
                 leaf_level=True)
NESTED_LEAF = rule("LH303", "nested-leaf", ERROR, "a leaf folder holds another leaf below it", leaf_level=True)
OUTSIDE_TREES = rule("LH304", "outside-trees", ERROR, "the leaf is not under compositional_skills/, foundational_skills/ or knowledge/",
                    leaf_level=True)


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


class _LeafFolders:
    """Which folders hold a leaf: those of the tree under the root (from the run's one
    scan, kept as taxonomy-relative strings) and those of the leaves being checked.

    A check asks only about one leaf's ancestors and descendants, so a commit
    touching one leaf of a large taxonomy never builds a path per leaf.
    """

    def __init__(self, ctx: Context):
        root = os.path.abspath(ctx.root)
        self.root_slash = os.path.join(root, "")
        self.tree = sorted({path.rpartition("/")[0] for path in ctx.leaf_stats()})
        self.tree_set = set(self.tree)
        self.checked = sorted({os.path.dirname(os.path.abspath(leaf.file)) for leaf in ctx.checked})
        self.checked_set = set(self.checked)

    def _relative(self, folder: str) -> str | None:
        """`folder` + "/" relative to the root ("" for the root), None outside it."""
        inside = folder + os.sep
        if not inside.startswith(self.root_slash):
            return None
        return inside[len(self.root_slash):].replace(os.sep, "/")

    def holds_leaf(self, folder: str) -> bool:
        rel = self._relative(folder)
        return folder in self.checked_set or (rel is not None and rel[:-1] in self.tree_set)

    def below(self, folder: str) -> list[str]:
        """The leaf folders strictly below `folder`, sorted."""
        rel = self._relative(folder)
        if rel is not None:  # the tree's folders that start with rel: a range of the sorted list
            lo = bisect_left(self.tree, rel)
            hi = bisect_left(self.tree, rel[:-1] + chr(ord("/") + 1)) if rel else len(self.tree)
            tree = self.tree[lo:hi]
        else:
            tree = self.tree if self.root_slash.startswith(folder + os.sep) else []  # the root is below it
        found = {self.root_slash + d.replace("/", os.sep) for d in tree}
        inside = folder + os.sep  # the checked folders that start with it: a range too
        found.update(self.checked[bisect_left(self.checked, inside):
                                  bisect_left(self.checked, folder + chr(ord(os.sep) + 1))])
        return sorted(found)


def _ancestors(folder: str) -> Iterator[str]:
    """The folders above an absolute folder, nearest first (string slicing: this runs per leaf)."""
    cut = folder.rfind(os.sep)
    while cut > 0:
        folder = folder[:cut]
        yield folder
        cut = folder.rfind(os.sep)


@leaf_check
def check_nesting(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    folders = ctx.memo("paths.leaf_folders", lambda: _LeafFolders(ctx))
    own = os.path.dirname(os.path.abspath(leaf.file))
    parent = next((d for d in _ancestors(own) if folders.holds_leaf(d)), None)
    if parent is not None:
        yield NESTED_LEAF.at(leaf.file, (1, 1), f"inside the leaf folder {os.path.relpath(parent)}/; "
                                                "a leaf folder must not hold other leaves")
        return
    inner = folders.below(own)
    if inner:
        more = f" and {len(inner) - 1} more" if len(inner) > 1 else ""
        yield NESTED_LEAF.at(leaf.file, (1, 1), f"holds another leaf below it ({os.path.relpath(inner[0])}/{more}); "
                                                "leaves belong only at the ends of the tree")
