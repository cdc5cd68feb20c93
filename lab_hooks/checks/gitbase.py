"""The taxonomy as it was at a base commit, for `lab-hooks validate --base REF`.

Everything is read through ONE `git cat-file --batch` process per run, whatever
the number of files: the commits (to find the merge base of REF and HEAD, as
`git merge-base` does), the trees and the blobs. Nothing else runs git, and
gitpython is not imported: the pre-commit hook pays a few milliseconds for its
base, not the ~120 ms gitpython's import costs nor one process per file.

The working tree is compared with the merge base's tree as git would: a file
is changed when its bytes hash to another blob. What each changed leaf then is
(added, modified, renamed; a symlink is skipped) is the ChangeSet's one policy,
lab_hooks.diff.classify: this module only reads the two sides for it. Paths handed
in and out are relative to the current directory (cat-file reads `<commit>:./path`
that way).
"""

from __future__ import annotations

import difflib
import heapq
import os
import posixpath
import subprocess
from itertools import count
from pathlib import Path
from typing import NamedTuple

from lab_hooks.diff.classify import ATTRIBUTION, LINK, NULL_SHA, REGULAR, Classifier, Entry, is_leaf, worktree_entry
from lab_hooks.errors import InputError
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, git_blob_sha
from lab_hooks.taxonomy.load import MAX_LEAF_BYTES, LeafError, read_bounded
_TREE_MODE, _BLOB_MODES = "40000", ("100644", "100755")
_REQUEST_BYTES = 16_384  # requests written before answers are read: far below a pipe's buffer


class BaseError(InputError):
    """A base that cannot be read; the message is one line that says what to do."""


class BaseLeaf(NamedTuple):
    """A checked leaf's state at the base."""

    status: str  # unchanged | modified | renamed | added
    old_file: str | None = None  # the leaf at the base (relative to the current directory)
    content: bytes | None = None  # its bytes at the base (modified, renamed)
    attribution: str | None = None  # the attribution.txt beside it at the base


class _Object(NamedTuple):
    sha: str
    kind: str
    data: bytes


class _CatFile:
    """One `git cat-file --batch`: requests are written in bounded batches, then answered."""

    def __init__(self) -> None:
        try:
            self.proc = subprocess.Popen(["git", "cat-file", "--batch"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise BaseError(f"cannot run git: {exc.strerror}") from None
        self.calls = 1

    def read(self, names: list[str]) -> list[_Object | None]:
        """Each object by name (a sha or `<rev>:<path>`); None where there is none."""
        out: list[_Object | None] = []
        start = 0
        while start < len(names):
            batch, size = [], 0
            for name in names[start:]:
                if batch and size + len(name) + 1 > _REQUEST_BYTES:
                    break
                batch.append(name)
                size += len(name) + 1
            start += len(batch)
            try:
                self.proc.stdin.write("".join(f"{n}\n" for n in batch).encode())
                self.proc.stdin.flush()
                out += [self._answer() for _ in batch]
            except (BrokenPipeError, ValueError):
                err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise BaseError(f"git cat-file failed: {err[-1] if err else 'it exited'}") from None
        return out

    def _answer(self) -> _Object | None:
        header = self.proc.stdout.readline()
        if not header:
            raise ValueError("git cat-file exited")
        parts = header.split()
        if len(parts) != 3:  # "<name> missing" or "<name> ambiguous"
            return None
        size = int(parts[2])
        data = self.proc.stdout.read(size + 1)[:size]
        return _Object(parts[0].decode(), parts[1].decode(), data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _commit_fields(data: bytes) -> tuple[list[str], int]:
    """A commit object's parents and committer time."""
    parents, when = [], 0
    for line in data.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"parent "):
            parents.append(line[7:].decode())
        elif line.startswith(b"committer "):
            when = int(line.rsplit(b" ", 2)[-2])
    return parents, when


def _tree_entries(data: bytes) -> list[tuple[str, str, str]]:
    """(mode, name, sha) of each entry of a tree object."""
    entries, at = [], 0
    while at < len(data):
        space = data.index(b" ", at)
        nul = data.index(b"\0", space)
        entries.append((data[at:space].decode(), data[space + 1:nul].decode("utf-8", "surrogateescape"),
                        data[nul + 1:nul + 21].hex()))
        at = nul + 21
    return entries


_ONE, _TWO, _STALE = 1, 2, 4


class GitBase:
    """The merge base of `ref` and HEAD, read through one cat-file process.

    `ref` HEAD in a repository without commits is an empty base: every leaf is new
    (the first commit of a repository runs the pre-commit hook too).
    """

    def __init__(self, ref: str) -> None:
        if not ref or any(c in ref for c in "\n\r\0"):
            raise BaseError(f"base ref {ref!r} is not a commit")
        self.git = _CatFile()
        try:
            head, base = self.git.read(["HEAD^{commit}", f"{ref}^{{commit}}"])
            if base is None and ref == "HEAD":
                self.commit = None  # no commit yet: an empty base
            elif base is None:
                raise BaseError(f"base ref {ref!r} is not a commit in this repository (fetch it first, e.g. "
                                "`git fetch origin main`; actions/checkout needs fetch-depth: 0)")
            elif head is None:
                raise BaseError("HEAD has no commit yet")
            else:
                self.commit = self._merge_base(base, head, ref)
        except BaseException:
            self.git.close()
            raise

    def close(self) -> None:
        self.git.close()

    def __enter__(self) -> GitBase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the merge base: git's paint-down-to-common, newest commits first ---------

    def _merge_base(self, base: _Object, head: _Object, ref: str) -> str:
        if base.sha == head.sha:
            return base.sha
        self._parsed = {base.sha: _commit_fields(base.data), head.sha: _commit_fields(head.data)}
        flags = {base.sha: _ONE, head.sha: _TWO}
        order = count()  # equal dates leave the queue in insertion order, as git's does
        queue = [(-self._parsed[c][1], next(order), c) for c in flags]
        heapq.heapify(queue)
        found: list[str] = []
        while any(not flags[c] & _STALE for *_, c in queue):
            *_, commit = heapq.heappop(queue)
            mark = flags[commit] & (_ONE | _TWO | _STALE)
            if mark == _ONE | _TWO:
                found.append(commit)
                mark |= _STALE
            parents = self._parents(commit)
            for parent in parents:
                if flags.get(parent, 0) & mark == mark:
                    continue
                flags[parent] = flags.get(parent, 0) | mark
                heapq.heappush(queue, (-self._parsed[parent][1], next(order), parent))
        if not found:
            raise BaseError(f"{ref!r} and HEAD share no history (unrelated branches)")
        # With clock skew a found commit can be an ancestor of another: git drops those.
        return next(c for c in found if not any(self._reaches(o, c) for o in found if o != c))

    def _parents(self, commit: str) -> list[str]:
        """A parsed commit's parents, each parsed too (read in one batch)."""
        parents = self._parsed[commit][0]
        unread = [p for p in parents if p not in self._parsed]
        for sha, obj in zip(unread, self.git.read(unread) if unread else []):
            if obj is None:
                raise BaseError(f"commit {sha[:12]} is missing (a shallow clone?): fetch the history "
                                "(actions/checkout with `fetch-depth: 0`, or `git fetch --deepen=200`) "
                                "and run again")
            self._parsed[sha] = _commit_fields(obj.data)
        return parents

    def _reaches(self, start: str, target: str) -> bool:
        """Whether `target` is an ancestor of `start` (walks no older than `target`)."""
        floor, seen, todo = self._parsed[target][1], {start}, [start]
        while todo:
            commit = todo.pop()
            if commit == target:
                return True
            for parent in self._parents(commit):
                if parent not in seen and self._parsed[parent][1] >= floor:
                    seen.add(parent)
                    todo.append(parent)
        return False

    # -- reading the base's files ---------------------------------------------------

    def blobs(self, files: list[str]) -> list[bytes | None]:
        """The base's bytes of each file (relative to the current directory), None where absent."""
        if self.commit is None:
            return [None] * len(files)
        # A name with a line break cannot be asked for (one request a line): such a file is new.
        found = self.git.read([f"{self.commit}:{_relative(f)}" if "\n" not in f else NULL_SHA for f in files])
        return [o.data if o is not None and o.kind == "blob" else None for o in found]

    def files(self, root: str) -> "BaseFiles":
        """The taxonomy's settings files (config, baseline) as the base has them."""
        return BaseFiles(self, root)

    def leaf_files(self, root: str) -> dict[str, str]:
        """Every leaf file and attribution.txt of the base under the taxonomy root: path
        (relative to the current directory, like the root) -> blob sha. Read level by level."""
        if self.commit is None:
            return {}
        root = _posix(root)
        level = [(posixpath.join(root, top) if root != "." else top) for top in sorted(TOP_LEVELS)]
        shas = {path: f"{self.commit}:{_relative(path)}" for path in level}
        out: dict[str, str] = {}
        while shas:
            paths = list(shas)
            objects = self.git.read([shas[p] for p in paths])
            shas = {}
            for path, obj in zip(paths, objects):
                if obj is None or obj.kind != "tree":
                    continue
                for mode, name, sha in _tree_entries(obj.data):
                    child = f"{path}/{name}"
                    if mode == _TREE_MODE:
                        shas[child] = sha
                    elif (name in LEAF_NAMES or name == ATTRIBUTION) and mode in _BLOB_MODES:
                        out[os.path.relpath(child)] = sha
        return out


class BaseFiles:
    """`config.Files` at the base: with `--base`, the rules and the baseline a change is
    judged by are the base's, so a change cannot relax them for itself."""

    def __init__(self, base: GitBase, root: str):
        self.base, self.root = base, root

    def read(self, name: str) -> bytes | None:
        return self.base.blobs([os.path.join(self.root, name)])[0]

    def where(self, name: str) -> str:
        commit = self.base.commit[:12] if self.base.commit else "an empty base"
        return f"{os.path.normpath(os.path.join(self.root, name))} at {commit}"


def repository_top(start: str = ".") -> str | None:
    """The nearest folder at or above `start` holding `.git` (a folder, or a file in a
    worktree), relative to the current directory; None outside a repository."""
    here = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(here, ".git")):
            return os.path.relpath(here)
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _posix(path: str) -> str:
    return os.path.normpath(path).replace(os.sep, "/")


def _relative(path: str) -> str:
    """A path relative to the current directory as `<rev>:` reads it (./ or ../ first)."""
    path = _posix(path)
    return path if path.startswith("../") else f"./{path}"


def changed_lines(old: bytes, new: bytes) -> set[int]:
    """1-based lines of `new` that an edit from `old` wrote (inserted or replaced)."""
    a, b = old.splitlines(), new.splitlines()
    changed: set[int] = set()
    for op, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("replace", "insert"):
            changed.update(range(j1 + 1, j2 + 1))
    return changed


def _decoded(content: bytes | None) -> str | None:
    return None if content is None else content.decode("utf-8", "replace").removeprefix("\ufeff")


class _HookDiffer(Classifier):
    """The ChangeSet's policy (lab_hooks.diff.classify) over the base's objects (the one cat-file
    process) and the working tree. Paths are relative to the current directory, as the hook's
    files are; the hook hands in only leaf files and the attribution.txt beside them, so all of
    them count (no in-repo documents: the hook reads no other file)."""

    def __init__(self, base: GitBase, root: str):
        super().__init__(_posix(root))
        self.base = base

    def in_taxonomy(self, path: str) -> bool:
        return True

    def head_entry(self, path: str) -> Entry | None:
        return worktree_entry(path)

    def head_bytes(self, path: str, entry: Entry) -> bytes:
        return read_bounded(Path(path))

    def base_entry(self, path: str) -> Entry | None:
        return self.base_entries([path])[0]

    def base_entries(self, paths: list[str]) -> list[Entry | None]:
        """Each file's blob at the base (one batch), None where absent."""
        if self.base.commit is None:
            return [None] * len(paths)
        found = self.base.git.read([f"{self.base.commit}:{_relative(p)}" if "\n" not in p else NULL_SHA for p in paths])
        return [Entry(o.sha, REGULAR) if o is not None and o.kind == "blob" else None for o in found]

    def base_bytes(self, entry: Entry) -> bytes:
        found = self.base.git.read([entry.sha])[0]
        if found is None:
            raise LeafError("LH001", f"object {entry.sha[:12]} is missing at the base")
        if len(found.data) > MAX_LEAF_BYTES:
            raise LeafError("LH001", f"file is {len(found.data):,} bytes, over the {MAX_LEAF_BYTES:,}-byte limit")
        return found.data

    def head_knowledge_leaves(self) -> list[tuple[str, Entry]]:
        return []

    def gone(self, changes: dict[str, tuple[Entry | None, Entry | None]]) -> None:
        """Add the base's leaves that are no longer on disk (deleted, or renamed from)."""
        for path, sha in self.base.leaf_files(self.root).items():
            path = _posix(path)
            if os.path.basename(path) != ATTRIBUTION and path not in changes and not os.path.lexists(path):
                changes[path] = (Entry(sha, REGULAR), None)


def read_base(base: GitBase, files: dict[str, tuple[bytes, str | None]], root: str) -> dict[str, BaseLeaf]:
    """The base's side of each checked leaf, as the ChangeSet's policy classifies it.

    `files` maps each checked leaf file (relative to the current directory) to its
    bytes on disk and its attribution text; `root` is the taxonomy root, where
    a leaf missing at the base is looked for among the base's deleted leaves.
    """
    differ = _HookDiffer(base, root)
    given = {_posix(f): f for f in files}
    paths = sorted(set(given) | {posixpath.join(posixpath.dirname(p), ATTRIBUTION) for p in given})
    changes: dict[str, tuple[Entry | None, Entry | None]] = {}
    for path, old in zip(paths, differ.base_entries(paths)):
        new = Entry(git_blob_sha(files[given[path]][0]), REGULAR) if path in given else differ.head_entry(path)
        if old != new:
            changes[path] = (old, new)
    if any(path in given and old is None for path, (old, _) in changes.items()):
        differ.gone(changes)  # a new leaf may be a renamed one
    leaves, _ = differ.classify(changes)
    moved = {c.path: c for c in leaves if c.status in ("modified", "renamed")}
    olds = [c.old_path for c in moved.values()]
    found = base.blobs(olds + [posixpath.join(posixpath.dirname(o), ATTRIBUTION) for o in olds])
    old_side = {path: (content, attribution) for path, content, attribution
                in zip(moved, found[:len(olds)], found[len(olds):])}
    view: dict[str, BaseLeaf] = {}
    for path, file in given.items():
        change = moved.get(path)
        if change is not None:
            content, attribution = old_side[path]
            old_file = file if change.old_path == path else os.path.normpath(change.old_path)
            view[file] = BaseLeaf(change.status, old_file, content, _decoded(attribution))
        elif path in changes:
            view[file] = BaseLeaf("added")
        else:
            view[file] = BaseLeaf("unchanged", file, files[file][0], files[file][1])
    return view


def changed_leaf_files(base: GitBase, root: str) -> list[str]:
    """The leaf files under the taxonomy root (relative to the current directory) that the
    ChangeSet's policy finds added, modified or renamed since the base (their attribution.txt
    counts), sorted. A leaf file that is a symlink is always among them: the checks report it
    (LH001), never skip it."""
    differ = _HookDiffer(base, root)
    old = {_posix(path): sha for path, sha in base.leaf_files(root).items()}
    changes: dict[str, tuple[Entry | None, Entry | None]] = {}
    links = []
    for file in _disk_leaf_files(root):
        path = _posix(file)
        if os.path.islink(file):
            links.append(file)
            new = Entry(git_blob_sha(os.fsencode(os.readlink(file))), LINK)
        else:
            new = differ.head_entry(path)
        attribution = posixpath.join(posixpath.dirname(path), ATTRIBUTION)
        for name, now in ((path, new), (attribution, differ.head_entry(attribution))):
            before = Entry(old[name], REGULAR) if name in old else None
            if before != now:
                changes[name] = (before, now)
    leaves, skipped = differ.classify(changes)  # (without the base's gone leaves: a rename is checked as any new leaf)
    found = {os.path.normpath(c.path) for c in leaves if c.status != "deleted"}
    found |= {os.path.normpath(s.path) for s in skipped if is_leaf(s.path)}
    return sorted(found | set(links))


def _disk_leaf_files(root: str) -> list[str]:
    out = []
    for top in sorted(TOP_LEVELS):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            out += [os.path.relpath(os.path.join(dirpath, n)) for n in filenames if n in LEAF_NAMES]
    return out
