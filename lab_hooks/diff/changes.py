"""Which leaves a change touches, from git objects, with merge-base semantics.

A PR's change is what GitHub shows: head against the merge base of base and
head. Trees are compared in process (gitpython reads objects through one
`git cat-file --batch`), descending only into subtrees whose sha differs, so
the cost grows with the size of the change, not of the repository or its
history. Content is read from blobs by sha; nothing is checked out.

A leaf counts as changed when its qna.yaml/qna.yml, the attribution.txt beside
it, or (knowledge) a document inside the repository that its `document.repo`
and `patterns` name, changed. Symlinks and submodules under the taxonomy are
reported as skipped and never read. That policy, case by case, is
lab_hooks.diff.classify (the hook's `validate --base` applies it too); this module
reads the two sides for it with gitpython.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

import git
from git.objects.fun import tree_entries_from_data

from lab_hooks.diff.classify import (
    ATTRIBUTION,
    LINK,
    NULL_SHA,
    SUBMODULE,
    TREE,
    Classifier,
    Entry,
    LeafChange,
    Skipped,
    file_blob_sha,
    is_leaf,
    worktree_entry,
)
from lab_hooks.errors import InputError
from lab_hooks.taxonomy.leaf import LEAF_NAMES, Kind, Leaf, git_blob_sha
from lab_hooks.taxonomy.load import MAX_LEAF_BYTES, LeafError, parse_leaf, read_bounded

class DiffError(InputError):
    """A diff that cannot be computed; the message is one line saying what to do."""


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


def _tree(repo: git.Repo, sha: str | None) -> dict[str, Entry]:
    if sha is None:
        return {}
    data = repo.odb.stream(bytes.fromhex(sha)).read()
    return {name: Entry(binsha.hex(), mode) for binsha, mode, name in tree_entries_from_data(data)}


def _walk_changes(repo, a: str | None, b: str | None, prefix: str, out: dict) -> None:
    """Fill out[path] = (base entry, head entry) for every blob-level difference."""
    ta, tb = _tree(repo, a), _tree(repo, b)
    for name in sorted(ta.keys() | tb.keys()):
        ea, eb = ta.get(name), tb.get(name)
        if ea == eb:
            continue
        path = prefix + name
        a_tree = ea is not None and ea.mode == TREE
        b_tree = eb is not None and eb.mode == TREE
        if a_tree or b_tree:
            _walk_changes(repo, ea.sha if a_tree else None, eb.sha if b_tree else None, path + "/", out)
        if not (a_tree and b_tree):  # a blob on at least one side (a file replaced by a folder, too)
            blob_a = None if a_tree else ea
            blob_b = None if b_tree else eb
            if blob_a != blob_b:
                out[path] = (blob_a, blob_b)


def _lookup(repo: git.Repo, tree_sha: str | None, path: str) -> Entry | None:
    if tree_sha is None:
        return None
    entry = Entry(tree_sha, TREE)
    for part in path.split("/"):
        if entry.mode != TREE:
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

def _worktree_changes(repo: git.Repo, base: str) -> dict[str, tuple[Entry | None, Entry | None]]:
    """Changes from the merge-base tree to the working tree, untracked files included."""
    root = Path(repo.working_tree_dir)
    out: dict[str, tuple[Entry | None, Entry | None]] = {}

    def on_disk(path: str) -> Entry | None:
        try:
            st = os.lstat(root / path)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return Entry(NULL_SHA, SUBMODULE)  # a checked-out submodule
        if stat.S_ISLNK(st.st_mode):
            return Entry(git_blob_sha(os.readlink(root / path).encode()), LINK)
        if not stat.S_ISREG(st.st_mode):
            return None
        return Entry(file_blob_sha(root / path, st.st_size), 0o100755 if st.st_mode & 0o111 else 0o100644)

    raw = repo.git.diff(base, "--raw", "-z", "--no-renames", "--no-abbrev", "--ignore-submodules=none", "--")
    fields = raw.split("\0")
    for meta, path in zip(fields[0::2], fields[1::2]):
        old_mode, _new_mode, old_sha, _new_sha, _status = meta.lstrip(":").split()
        old = None if int(old_mode, 8) == 0 else Entry(old_sha, int(old_mode, 8))
        new = on_disk(path)
        if old != new:
            out[path] = (old, new)
    untracked = repo.git.ls_files("--others", "--exclude-standard", "-z").split("\0")
    for path in filter(None, untracked):
        path = path.rstrip("/")  # a nested repository is listed as a folder
        out[path] = (None, on_disk(path))
    return out


# -- classification -------------------------------------------------------------

class _Differ(Classifier):
    """The policy (diff.classify) over gitpython's reader: head is a commit's tree or the working tree."""

    def __init__(self, repo: git.Repo, base_tree: str | None, head_tree: str | None, root: str):
        super().__init__(root)
        self.repo, self.base_tree, self.head_tree = repo, base_tree, head_tree
        self.workdir = Path(repo.working_tree_dir) if repo.working_tree_dir else None

    def head_entry(self, path: str) -> Entry | None:
        if self.head_tree is not None:
            return _lookup(self.repo, self.head_tree, path)
        return worktree_entry(self.workdir / path)

    def head_bytes(self, path: str, entry: Entry) -> bytes:
        if self.head_tree is not None:
            return read_blob(self.repo, entry.sha)
        return read_bounded(self.workdir / path)

    def base_entry(self, path: str) -> Entry | None:
        return _lookup(self.repo, self.base_tree, path)

    def base_bytes(self, entry: Entry) -> bytes:
        return read_blob(self.repo, entry.sha)

    def head_knowledge_leaves(self) -> list[tuple[str, Entry]]:
        base = posixpath.join(self.root, Kind.KNOWLEDGE.value) if self.root else Kind.KNOWLEDGE.value
        if self.head_tree is not None:
            found: dict = {}
            top = _lookup(self.repo, self.head_tree, base)
            if top is not None and top.mode == TREE:
                _walk_changes(self.repo, None, top.sha, base + "/", found)
            return [(p, new) for p, (_, new) in found.items() if is_leaf(p) and new.regular]
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
