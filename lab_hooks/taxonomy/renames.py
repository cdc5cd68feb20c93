"""Which new leaf is a renamed old one: part of the one change policy (lab_hooks.diff.classify)
of `diff.ChangeSet` and of the hook's `validate --base`. Light: the hook path imports it."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

RENAME_SIMILARITY = 0.5  # git's default for -M: the share of lines a rename keeps
MAX_SCORED = 2500  # (old, new) pairs compared by content at most; beyond, only identical blobs pair

Reader = Callable[[Sequence[str]], Sequence[bytes | None]]


def similarity(a: bytes, b: bytes) -> float:
    """The share of lines two versions of a file have in common."""
    return difflib.SequenceMatcher(None, a.splitlines(), b.splitlines(), autojunk=False).ratio()


def pair_renames(gone: dict[str, str], new: dict[str, str], read_gone: Reader, read_new: Reader) -> dict[str, str]:
    """{new path: old path} for leaves gone from their path and leaves new at theirs ({path:
    blob sha} each): the same blob first, then the most similar (>= RENAME_SIMILARITY of the
    lines), each leaf at most once, ties by path. `read_*(paths)` give their bytes (None:
    unreadable, never paired by content)."""
    pairs: dict[str, str] = {}
    by_sha: dict[str, list[str]] = {}
    for path, sha in sorted(gone.items()):
        by_sha.setdefault(sha, []).append(path)
    for path, sha in sorted(new.items()):
        if by_sha.get(sha):
            pairs[path] = by_sha[sha].pop(0)
    olds = sorted(set(gone) - set(pairs.values()))
    rest = sorted(set(new) - set(pairs))
    if not olds or not rest or len(olds) * len(rest) > MAX_SCORED:
        return pairs
    old_bytes, new_bytes = dict(zip(olds, read_gone(olds))), dict(zip(rest, read_new(rest)))
    scored = sorted(((similarity(old_bytes[o], new_bytes[n]), n, o) for o in olds for n in rest
                     if old_bytes[o] is not None and new_bytes[n] is not None), key=lambda t: (-t[0], t[1], t[2]))
    taken = set()
    for score, path, old in scored:
        if score >= RENAME_SIMILARITY and path not in pairs and old not in taken:
            pairs[path] = old
            taken.add(old)
    return pairs
