"""Change detection: the leaves a pull request (or the working tree) changes, as one ChangeSet.

    from lab_hooks.diff import diff_taxonomy

    changes = diff_taxonomy(repo_path, base="origin/main", head="HEAD")   # head=None: working tree
    changes.leaves          # LeafChange: status, path, blob_sha, old_path, old_blob_sha, ...
    changes.read_all()      # the head side of added/modified/renamed leaves, parsed from blobs by sha
    changes.added           # names of added leaves
    changes.retired         # names whose old data leaves the replay buffer (modified, deleted, renamed-from)
    changes.skipped         # symlinks and submodules inside the taxonomy: never read

`whole_taxonomy(repo, commit)` is every leaf of a commit as added (a first promotion).
`leaf_from_blobs(repo, path, blob_sha, attribution_sha)` parses any leaf from git
objects. Errors the user can fix (unknown ref, shallow clone) are `DiffError`, an
InputError with a one-line message.
"""

from lab_hooks.diff.changes import (
    ChangeSet,
    DiffError,
    LeafChange,
    Skipped,
    changed_leaves,
    diff_taxonomy,
    leaf_from_blobs,
    leaf_name,
    open_repo,
    read_blob,
    resolve_commit,
    whole_taxonomy,
)

__all__ = [
    "ChangeSet", "DiffError", "LeafChange", "Skipped",
    "changed_leaves", "diff_taxonomy", "leaf_from_blobs", "leaf_name", "open_repo", "read_blob", "resolve_commit",
    "whole_taxonomy",
]
