"""What a change does to each leaf: the one policy of `diff.ChangeSet` and of the hook's
`validate --base` (checks.gitbase).

Both hand `Classifier.classify` the files that differ between the base and the head
({path: (base entry, head entry)}), read through their own git reader (gitpython for the
ChangeSet, one `git cat-file` process for the hook), and get the same answer: which leaves
are added, modified, renamed or deleted, which files are skipped (symlinks, submodules:
never read), and why each leaf counts as changed (its file, its attribution.txt, an
in-repo document of a knowledge leaf). Light: the hook path imports it (no gitpython).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass

from lab_hooks.taxonomy.documents import glob_regex, in_repo_folder
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, Kind, taxonomy_path
from lab_hooks.taxonomy.load import LeafError, parse_leaf
from lab_hooks.taxonomy.renames import pair_renames

ATTRIBUTION = "attribution.txt"
NULL_SHA = "0" * 40  # an object no repository has
TREE, LINK, SUBMODULE, REGULAR = 0o040000, 0o120000, 0o160000, 0o100644
_KIND = 0o170000  # the file-type bits of a mode


@dataclass(frozen=True)
class Entry:
    """A file's git object and mode, on one side of a change."""

    sha: str
    mode: int

    @property
    def regular(self) -> bool:
        return self.mode & _KIND == 0o100000


def file_blob_sha(path: str | os.PathLike, size: int) -> str:
    """`git hash-object` of a file of `size` bytes, streamed: a huge file costs no memory."""
    digest = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def worktree_entry(path: str | os.PathLike) -> Entry | None:
    """A regular file's entry in the working tree (None when absent, unreadable or not a regular
    file): the head side both readers see when the head is the working tree."""
    try:
        st = os.lstat(path)
        return Entry(file_blob_sha(path, st.st_size), REGULAR) if stat.S_ISREG(st.st_mode) else None
    except OSError:
        return None


@dataclass(frozen=True)
class LeafChange:
    """One changed leaf. Paths are repository-relative, posix."""

    status: str  # added | modified | renamed | deleted
    path: str  # the leaf file on the head side (the base side for deleted)
    blob_sha: str | None  # head side; None when deleted
    old_path: str | None = None  # the base side; None when added
    old_blob_sha: str | None = None
    attribution_sha: str | None = None  # head side attribution.txt
    reasons: tuple[str, ...] = ()  # the changed files that make this a change

    @property
    def kind(self) -> Kind | None:
        return taxonomy_path(self.path)[1]

    @property
    def name(self) -> str:
        """The leaf's id: its taxonomy-relative directory."""
        return leaf_name(self.path)

    @property
    def old_name(self) -> str | None:
        """The base side's leaf id (None when added)."""
        return leaf_name(self.old_path) if self.old_path else None


def leaf_name(path: str) -> str:
    """A leaf's id from its file's path: the taxonomy-relative directory."""
    return posixpath.dirname(taxonomy_path(path)[0])


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def is_leaf(path: str) -> bool:
    return posixpath.basename(path) in LEAF_NAMES


def in_repo_documents(document: dict | None, root: str) -> list[re.Pattern] | None:
    """Regexes over repository paths for a knowledge leaf's in-repo document, else None.

    `document.repo` that is not a URL is a folder relative to the taxonomy root
    (lab-hooks' offline extension); its `patterns` are globs inside it.
    """
    if not isinstance(document, dict):
        return None
    repo, patterns = document.get("repo"), document.get("patterns")
    if not isinstance(repo, str) or not repo or not isinstance(patterns, list):
        return None
    folder = in_repo_folder(repo)
    if folder is None:
        return None  # remote (URL, scp-like) or outside the repository: the validator's rule
    folder = posixpath.normpath(posixpath.join(root, folder))
    folder = "" if folder == "." else folder + "/"
    return [glob_regex(folder + p.lstrip("/")) for p in patterns if isinstance(p, str) and ".." not in p]


_LOCAL_REPO = re.compile(rb"^\s*repo:\s*['\"]?(?!https?://|git@)\S", re.MULTILINE)


class Classifier:
    """The policy over a reader of both sides. A reader implements the five accessors below;
    `root` is the taxonomy's folder in the repository ("" = its root)."""

    def __init__(self, root: str):
        self.root = root

    # -- what a reader provides ----------------------------------------------------

    def head_entry(self, path: str) -> Entry | None:
        """A regular file's entry on the head side (None when absent or not a regular file)."""
        raise NotImplementedError

    def head_bytes(self, path: str, entry: Entry) -> bytes:
        """A head-side file's bytes (LeafError when too large or unreadable)."""
        raise NotImplementedError

    def base_entry(self, path: str) -> Entry | None:
        """A file's entry on the base side (None when absent)."""
        raise NotImplementedError

    def base_bytes(self, entry: Entry) -> bytes:
        """A base-side blob's bytes (LeafError when too large)."""
        raise NotImplementedError

    def head_knowledge_leaves(self) -> list[tuple[str, Entry]]:
        """(path, entry) of every knowledge leaf on the head side."""
        raise NotImplementedError

    # -- the policy ----------------------------------------------------------------

    def in_taxonomy(self, path: str) -> bool:
        rel = path[len(self.root) + 1:] if self.root else path
        if self.root and not path.startswith(self.root + "/"):
            return False
        return rel.split("/", 1)[0] in TOP_LEVELS

    def classify(self, changes: dict[str, tuple[Entry | None, Entry | None]]) -> tuple[list[LeafChange], list[Skipped]]:
        """The leaf changes and skipped files that `changes` ({path: (base, head)}) make."""
        skipped: list[Skipped] = []
        added: dict[str, Entry] = {}
        deleted: dict[str, Entry] = {}
        modified: dict[str, tuple[Entry, Entry]] = {}
        reasons: dict[str, list[str]] = {}  # head leaf path -> extra reasons
        others: list[str] = []
        for path, (old, new) in sorted(changes.items()):
            if not self.in_taxonomy(path):
                others.append(path)
                continue
            odd = [e for e in (old, new) if e is not None and not e.regular]
            if odd:
                what = "submodule" if any(e.mode == SUBMODULE for e in odd) else "symlink"
                skipped.append(Skipped(path, f"{what} inside the taxonomy: not read"))
                continue
            if is_leaf(path):
                if old and new:
                    modified[path] = (old, new)
                elif new:
                    added[path] = new
                elif old:
                    deleted[path] = old
            elif posixpath.basename(path) == ATTRIBUTION:
                folder = posixpath.dirname(path)
                for name in LEAF_NAMES:
                    if self.head_entry(f"{folder}/{name}"):
                        reasons.setdefault(f"{folder}/{name}", []).append(path)
            else:
                others.append(path)
        if others:
            self._documents(others, reasons)

        renamed = self._renames(added, deleted)
        out: list[LeafChange] = []
        for path, new in added.items():
            out.append(self._change("added", path, new, None, None, reasons))
        for path, (old, new) in modified.items():
            out.append(self._change("modified", path, new, path, old, reasons))
        for old_path, (path, old, new) in renamed.items():
            out.append(self._change("renamed", path, new, old_path, old, reasons))
        for path, old in deleted.items():
            out.append(LeafChange("deleted", path, None, path, old.sha, None, (path,)))
        touched = {c.path for c in out}
        for path, why in reasons.items():
            if path not in touched:
                entry = self.head_entry(path)
                out.append(self._change("modified", path, entry, path, self.base_entry(path), reasons,
                                        leaf_changed=False))
        out.sort(key=lambda c: c.path)
        return out, skipped

    def _change(self, status, path, new, old_path, old, reasons, leaf_changed=True) -> LeafChange:
        folder = posixpath.dirname(path)
        attribution = self.head_entry(f"{folder}/{ATTRIBUTION}")
        why = ([path] if leaf_changed else []) + sorted(set(reasons.get(path, [])))
        return LeafChange(status, path, new.sha if new else None, old_path, old.sha if old else None,
                          attribution.sha if attribution else None, tuple(why))

    def _renames(self, added: dict, deleted: dict) -> dict[str, tuple[str, Entry, Entry]]:
        """Pair deleted with added leaves (lab_hooks.taxonomy.renames)."""
        pairs = pair_renames({p: e.sha for p, e in deleted.items()}, {p: e.sha for p, e in added.items()},
                             lambda paths: [self._readable(lambda: self.base_bytes(deleted[p])) for p in paths],
                             lambda paths: [self._readable(lambda: self.head_bytes(p, added[p])) for p in paths])
        return {old: (path, deleted.pop(old), added.pop(path)) for path, old in sorted(pairs.items())}

    @staticmethod
    def _readable(read) -> bytes | None:
        try:
            return read()
        except LeafError:
            return None  # too large or unreadable: never paired by similarity

    def _documents(self, others: list[str], reasons: dict[str, list[str]]) -> None:
        """Credit changed non-leaf files to knowledge leaves whose in-repo document they are."""
        for path, entry in self.head_knowledge_leaves():
            try:
                content = self.head_bytes(path, entry)
                if not _LOCAL_REPO.search(content):
                    continue  # cheap pre-filter: this leaf's document is a remote repo
                patterns = in_repo_documents(parse_leaf(content, path).document, self.root)
            except LeafError:
                continue
            for other in others:
                if patterns and any(p.match(other) for p in patterns):
                    reasons.setdefault(path, []).append(other)
