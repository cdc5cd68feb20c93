"""Which leaves a change touches, from git objects, with merge-base semantics.

A PR's change is what GitHub shows: head against the merge base of base and
head. Trees are compared in process (gitpython reads objects through one
`git cat-file --batch`), descending only into subtrees whose sha differs, so
the cost grows with the size of the change, not of the repository or its
history. Content is read from blobs by sha; nothing is checked out.

A leaf counts as changed when its qna.yaml/qna.yml, the attribution.txt beside
it, or (knowledge) a document inside the repository that its `document.repo`
and `patterns` name, changed. Symlinks and submodules under the taxonomy are
reported as skipped and never read.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import git
from git.objects.fun import tree_entries_from_data

from lab_hooks.errors import InputError
from lab_hooks.taxonomy.documents import glob_regex, in_repo_folder
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, Kind, Leaf, git_blob_sha, taxonomy_path
from lab_hooks.taxonomy.load import MAX_LEAF_BYTES, LeafError, parse_leaf, read_bounded
from lab_hooks.taxonomy.renames import pair_renames

ATTRIBUTION = "attribution.txt"
NULL_SHA = "0" * 40
_TREE, _LINK, _SUBMODULE = 0o040000, 0o120000, 0o160000


class DiffError(InputError):
    """A diff that cannot be computed; the message is one line saying what to do."""


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


@dataclass(eq=False)
class ChangeSet:
    """What a change does to the taxonomy, read from git objects, and the one policy for each case.

    - added, modified, renamed: the head side is read from its blob (`read`, `read_all`) and its
      new data is generated and trained;
    - modified, renamed, deleted: the base side's old data leaves main's replay buffer (`retired`);
    - deleted: nothing to read, generate or train;
    - a leaf that cannot be read, or a leaf file that is a symlink or submodule (`skipped`, never
      read): an InputError naming the file (file:line:col), in every command; the validator
      reports each as a finding instead.
    """

    repo: git.Repo
    base: str | None  # the merge base's sha (None: everything counts as added)
    head: str | None  # None: the working tree (staged, unstaged, untracked)
    leaves: tuple[LeafChange, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def close(self) -> None:
        """Stop the git processes that read objects (the change set is unusable afterwards)."""
        self.repo.close()

    def __enter__(self) -> ChangeSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def present(self) -> tuple[LeafChange, ...]:
        """The changes with a head side (added, modified, renamed): what is read and trained."""
        return tuple(c for c in self.leaves if c.status != "deleted")

    @property
    def added(self) -> frozenset[str]:
        """Names of the leaves this change adds."""
        return frozenset(c.name for c in self.leaves if c.status == "added")

    @property
    def retired(self) -> frozenset[str]:
        """Names whose old data must leave the replay buffer: modified, deleted, renamed-from."""
        return frozenset(c.old_name for c in self.leaves if c.old_path)

    @property
    def skipped_leaves(self) -> tuple[Skipped, ...]:
        """Leaf files that are symlinks or submodules: never read, always reported."""
        return tuple(s for s in self.skipped if posixpath.basename(s.path) in LEAF_NAMES)

    def read(self, change: LeafChange) -> Leaf:
        """The head side of a change as a Leaf (raises LeafError for unusable content)."""
        if change.blob_sha is None:
            raise ValueError(f"{change.path} was deleted: it has no head side")
        if self.head is None:
            path = Path(self.repo.working_tree_dir, change.path)
            attribution = None
            if change.attribution_sha:
                try:
                    attribution = read_bounded(path.parent / ATTRIBUTION).decode("utf-8", "replace")
                except LeafError:
                    pass
            return parse_leaf(read_bounded(path), change.path, attribution)
        return leaf_from_blobs(self.repo, change.path, change.blob_sha, change.attribution_sha)

    def read_all(self) -> list[Leaf]:
        """Every leaf with a head side; InputError at the first that cannot be read or was skipped."""
        for s in self.skipped_leaves:
            raise InputError(f"{s.path}: {s.reason}")
        leaves = []
        for change in self.present:
            try:
                leaves.append(self.read(change))
            except LeafError as exc:
                raise InputError(f"{change.path}:{exc.pos[0]}:{exc.pos[1]}: {exc.code} {exc.message}") from None
        return leaves

    def head_sha(self, path: str) -> str | None:
        """The sha of a file or folder on the head side (None when absent; a commit's only)."""
        return entry.sha if self.head and (entry := _lookup(self.repo, self.repo.commit(self.head).tree.hexsha, path)) \
            else None

    def base_bytes(self, change: LeafChange) -> bytes | None:
        """The base side's leaf file (None when added), from the object database."""
        return read_blob(self.repo, change.old_blob_sha) if change.old_blob_sha else None


@dataclass(frozen=True)
class _Entry:
    sha: str
    mode: int


# -- reading git objects --------------------------------------------------------

def read_blob(repo: git.Repo, sha: str, limit: int = MAX_LEAF_BYTES) -> bytes:
    """A blob's bytes by sha; a LeafError, not a read, when it is over `limit`."""
    binsha = bytes.fromhex(sha)
    size = repo.odb.info(binsha).size
    if size > limit:
        raise LeafError("LH001", f"file is {size:,} bytes, over the {limit:,}-byte limit")
    return repo.odb.stream(binsha).read()


def leaf_from_blobs(repo: git.Repo, path: str, blob_sha: str, attribution_sha: str | None = None) -> Leaf:
    """A Leaf parsed from git objects: the leaf's blob and its attribution.txt's blob."""
    attribution = None
    if attribution_sha:
        try:
            attribution = read_blob(repo, attribution_sha).decode("utf-8", "replace")
        except LeafError:
            pass  # the validator reports an unreadable attribution; the leaf still loads
    return parse_leaf(read_blob(repo, blob_sha), path, attribution)


def _tree(repo: git.Repo, sha: str | None) -> dict[str, _Entry]:
    if sha is None:
        return {}
    data = repo.odb.stream(bytes.fromhex(sha)).read()
    return {name: _Entry(binsha.hex(), mode) for binsha, mode, name in tree_entries_from_data(data)}


def _walk_changes(repo, a: str | None, b: str | None, prefix: str, out: dict) -> None:
    """Fill out[path] = (base entry, head entry) for every blob-level difference."""
    ta, tb = _tree(repo, a), _tree(repo, b)
    for name in sorted(ta.keys() | tb.keys()):
        ea, eb = ta.get(name), tb.get(name)
        if ea == eb:
            continue
        path = prefix + name
        a_tree = ea is not None and ea.mode == _TREE
        b_tree = eb is not None and eb.mode == _TREE
        if a_tree or b_tree:
            _walk_changes(repo, ea.sha if a_tree else None, eb.sha if b_tree else None, path + "/", out)
        if not (a_tree and b_tree):  # a blob on at least one side (a file replaced by a folder, too)
            blob_a = None if a_tree else ea
            blob_b = None if b_tree else eb
            if blob_a != blob_b:
                out[path] = (blob_a, blob_b)


def _lookup(repo: git.Repo, tree_sha: str | None, path: str) -> _Entry | None:
    if tree_sha is None:
        return None
    entry = _Entry(tree_sha, _TREE)
    for part in path.split("/"):
        if entry.mode != _TREE:
            return None
        entry = _tree(repo, entry.sha).get(part)
        if entry is None:
            return None
    return entry


# -- resolving refs -------------------------------------------------------------

def resolve_commit(repo: git.Repo, ref: str, role: str) -> git.Commit:
    """The commit a ref names; a DiffError saying what to fetch when there is none."""
    try:
        return repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError):
        hint = " (fetch it first, e.g. `git fetch origin main`; actions/checkout needs fetch-depth: 0)" \
            if role == "base" else ""
        raise DiffError(f"{role} ref {ref!r} is not a commit in {repo.working_tree_dir or repo.git_dir}{hint}") from None


def _merge_base(repo: git.Repo, base: git.Commit, head: git.Commit, base_ref: str) -> git.Commit:
    try:
        found = repo.git.merge_base(base.hexsha, head.hexsha).split()
    except git.GitCommandError as exc:
        if exc.status != 1:
            raise DiffError(f"git merge-base failed: {str(exc.stderr).strip() or exc}") from None
        found = []
    if found:
        return repo.commit(found[0])
    if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
        raise DiffError(
            f"no merge base between {base_ref!r} and head in this shallow clone: fetch the history "
            "(actions/checkout with `fetch-depth: 0`, or `git fetch --deepen=200`) and run again")
    raise DiffError(f"{base_ref!r} and head share no history (unrelated branches)")


# -- the working tree -----------------------------------------------------------

def _file_blob_sha(path: Path, size: int) -> str:
    """`git hash-object` of a file, streamed: a huge file costs no memory."""
    digest = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _worktree_changes(repo: git.Repo, base: str) -> dict[str, tuple[_Entry | None, _Entry | None]]:
    """Changes from the merge-base tree to the working tree, untracked files included."""
    root = Path(repo.working_tree_dir)
    out: dict[str, tuple[_Entry | None, _Entry | None]] = {}

    def on_disk(path: str) -> _Entry | None:
        try:
            st = os.lstat(root / path)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return _Entry(NULL_SHA, _SUBMODULE)  # a checked-out submodule
        if stat.S_ISLNK(st.st_mode):
            return _Entry(git_blob_sha(os.readlink(root / path).encode()), _LINK)
        if not stat.S_ISREG(st.st_mode):
            return None
        return _Entry(_file_blob_sha(root / path, st.st_size), 0o100755 if st.st_mode & 0o111 else 0o100644)

    raw = repo.git.diff(base, "--raw", "-z", "--no-renames", "--no-abbrev", "--ignore-submodules=none", "--")
    fields = raw.split("\0")
    for meta, path in zip(fields[0::2], fields[1::2]):
        old_mode, _new_mode, old_sha, _new_sha, _status = meta.lstrip(":").split()
        old = None if int(old_mode, 8) == 0 else _Entry(old_sha, int(old_mode, 8))
        new = on_disk(path)
        if old != new:
            out[path] = (old, new)
    untracked = repo.git.ls_files("--others", "--exclude-standard", "-z").split("\0")
    for path in filter(None, untracked):
        path = path.rstrip("/")  # a nested repository is listed as a folder
        out[path] = (None, on_disk(path))
    return out


# -- classification -------------------------------------------------------------

def _in_taxonomy(path: str, root: str) -> bool:
    rel = path[len(root) + 1:] if root else path
    if root and not path.startswith(root + "/"):
        return False
    return rel.split("/", 1)[0] in TOP_LEVELS


def _is_leaf(path: str) -> bool:
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


class _Differ:
    def __init__(self, repo: git.Repo, base_tree: str | None, head_tree: str | None, root: str):
        self.repo, self.base_tree, self.head_tree, self.root = repo, base_tree, head_tree, root
        self.workdir = Path(repo.working_tree_dir) if repo.working_tree_dir else None

    def head_entry(self, path: str) -> _Entry | None:
        if self.head_tree is not None:
            return _lookup(self.repo, self.head_tree, path)
        full = self.workdir / path
        try:
            st = os.lstat(full)
        except OSError:
            return None
        return _Entry(_file_blob_sha(full, st.st_size), 0o100644) if stat.S_ISREG(st.st_mode) else None

    def head_bytes(self, path: str, entry: _Entry) -> bytes:
        if self.head_tree is not None:
            return read_blob(self.repo, entry.sha)
        return read_bounded(self.workdir / path)

    def head_knowledge_leaves(self):
        """(path, entry) of every knowledge leaf on the head side."""
        base = posixpath.join(self.root, Kind.KNOWLEDGE.value) if self.root else Kind.KNOWLEDGE.value
        if self.head_tree is not None:
            found: dict = {}
            top = _lookup(self.repo, self.head_tree, base)
            if top is not None and top.mode == _TREE:
                _walk_changes(self.repo, None, top.sha, base + "/", found)
            return [(p, new) for p, (_, new) in found.items() if _is_leaf(p) and new.mode & 0o170000 == 0o100000]
        out = []
        for dirpath, dirnames, filenames in os.walk(self.workdir / base):
            dirnames.sort()
            for name in filenames:
                if name in LEAF_NAMES:
                    rel = Path(dirpath, name).relative_to(self.workdir).as_posix()
                    entry = self.head_entry(rel)
                    if entry:
                        out.append((rel, entry))
        return out

    def classify(self, changes: dict) -> tuple[list[LeafChange], list[Skipped]]:
        skipped: list[Skipped] = []
        added: dict[str, _Entry] = {}
        deleted: dict[str, _Entry] = {}
        modified: dict[str, tuple[_Entry, _Entry]] = {}
        reasons: dict[str, list[str]] = {}  # head leaf path -> extra reasons
        others: list[str] = []
        for path, (old, new) in sorted(changes.items()):
            if not _in_taxonomy(path, self.root):
                others.append(path)
                continue
            odd = [e for e in (old, new) if e is not None and e.mode & 0o170000 != 0o100000]
            if odd:
                what = "submodule" if any(e.mode == _SUBMODULE for e in odd) else "symlink"
                skipped.append(Skipped(path, f"{what} inside the taxonomy: not read"))
                continue
            if _is_leaf(path):
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
                out.append(self._change("modified", path, entry, path, _lookup(self.repo, self.base_tree, path),
                                        reasons, leaf_changed=False))
        out.sort(key=lambda c: c.path)
        return out, skipped

    def _change(self, status, path, new, old_path, old, reasons, leaf_changed=True) -> LeafChange:
        folder = posixpath.dirname(path)
        attribution = self.head_entry(f"{folder}/{ATTRIBUTION}")
        why = ([path] if leaf_changed else []) + sorted(set(reasons.get(path, [])))
        return LeafChange(status, path, new.sha if new else None, old_path, old.sha if old else None,
                          attribution.sha if attribution else None, tuple(why))

    def _renames(self, added: dict, deleted: dict) -> dict[str, tuple[str, _Entry, _Entry]]:
        """Pair deleted with added leaves (lab_hooks.taxonomy.renames: the hook's policy too)."""
        pairs = pair_renames({p: e.sha for p, e in deleted.items()}, {p: e.sha for p, e in added.items()},
                             lambda paths: [self._readable(lambda: read_blob(self.repo, deleted[p].sha)) for p in paths],
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


# -- the API --------------------------------------------------------------------

def open_repo(repo_path: str | os.PathLike | git.Repo) -> git.Repo:
    if isinstance(repo_path, git.Repo):
        return repo_path
    try:
        return git.Repo(repo_path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise DiffError(f"{repo_path}: not inside a git repository") from None


def diff_taxonomy(repo_path: str | os.PathLike | git.Repo, base: str, head: str | None = None, root: str = "") -> ChangeSet:
    """The leaves changed on `head` (default: the working tree) since it forked from `base`.

    `root` is the taxonomy's folder inside the repository ("" = the repository root).
    """
    repo = open_repo(repo_path)
    root = _normal_root(root)
    base_commit = resolve_commit(repo, base, "base")
    if head is None:
        if repo.bare:
            raise DiffError(f"{repo.git_dir}: a bare repository has no working tree; pass --head")
        try:
            head_commit = repo.head.commit
        except ValueError:
            raise DiffError(f"{repo.working_tree_dir}: HEAD has no commit yet") from None
    else:
        head_commit = resolve_commit(repo, head, "head")
    merge_base = _merge_base(repo, base_commit, head_commit, base)
    if head is None:
        changes = _worktree_changes(repo, merge_base.hexsha)
        head_tree = None
    else:
        changes = {}
        _walk_changes(repo, merge_base.tree.hexsha, head_commit.tree.hexsha, "", changes)
        head_tree = head_commit.tree.hexsha
    differ = _Differ(repo, merge_base.tree.hexsha, head_tree, root)
    leaves, skipped = differ.classify(changes)
    return ChangeSet(repo, merge_base.hexsha, head_commit.hexsha if head else None, tuple(leaves), tuple(skipped))


def whole_taxonomy(repo_path: str | os.PathLike | git.Repo, commit: str, root: str = "") -> ChangeSet:
    """Every leaf of a commit as `added`, with its attribution and in-repo documents (no base)."""
    repo = open_repo(repo_path)
    head = resolve_commit(repo, commit, "head")
    changes: dict = {}
    _walk_changes(repo, None, head.tree.hexsha, "", changes)
    leaves, skipped = _Differ(repo, None, head.tree.hexsha, _normal_root(root)).classify(changes)
    return ChangeSet(repo, None, head.hexsha, tuple(leaves), tuple(skipped))


def _normal_root(root: str) -> str:
    root = posixpath.normpath(root.replace("\\", "/")).strip("/") if root else ""
    return "" if root == "." else root


def changed_leaves(repo_path: str | os.PathLike, base: str, head: str | None = None, root: str = "") -> list[LeafChange]:
    """Shorthand for `diff_taxonomy(...).leaves`, the repository closed again."""
    with diff_taxonomy(repo_path, base, head, root) as diff:
        return diff.leaves
