"""Which leaves a branch evaluation asks: named files, or what a git range changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab_hooks.errors import InputError
from lab_hooks.taxonomy.load import LeafError, find_leaf_files, load_leaf_file


@dataclass
class BranchLeaves:
    changed: list = field(default_factory=list)  # Leaf objects added or modified
    new: frozenset[str] = frozenset()  # names of the added ones
    unchanged: list = field(default_factory=list)  # the pool the regression sample is drawn from


def _where(file: str, exc: LeafError) -> str:
    return f"{file}:{exc.pos[0]}:{exc.pos[1]}: {exc.code} {exc.message}"


def load_files(files: list[str]) -> list:
    leaves = []
    for file in files:
        try:
            leaves.append(load_leaf_file(file))
        except LeafError as exc:
            raise InputError(_where(file, exc)) from None
        except OSError as exc:
            raise InputError(f"{file}: cannot read ({exc.strerror or exc})") from None
    return leaves


def load_tree(root: Path, skip: set[str] = frozenset()) -> list:
    """Every readable leaf under a taxonomy root but those named in `skip`.

    A leaf that does not parse is left out: it is the validator's business,
    and it cannot be a regression probe.
    """
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    leaves = []
    for file in find_leaf_files(root):
        try:
            leaf = load_leaf_file(file, root)
        except (LeafError, OSError):
            continue
        if leaf.name not in skip:
            leaves.append(leaf)
    return leaves


def from_git(repo: Path, base: str, head: str | None = None, root: str = "") -> BranchLeaves:
    """The leaves `head` (default: the working tree) adds or modifies since `base`; the rest of the checkout."""
    from lab_hooks.diff import diff_taxonomy

    changes = diff_taxonomy(repo, base, head, root)
    changed = changes.read_all()
    unchanged = load_tree(repo / root, {leaf.name for leaf in changed})
    return BranchLeaves(changed, changes.added, unchanged)
