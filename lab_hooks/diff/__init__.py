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
InputError with a one-line message. What each case means (added, modified, renamed,
deleted, skipped) is `lab_hooks.diff.classify`, the policy the hook's `validate --base`
shares.
"""

from __future__ import annotations

from lab_hooks.diff.classify import LeafChange, Skipped, leaf_name

# gitpython (about 0.15 s to import) only when one of these is used: the hook path imports
# lab_hooks.diff.classify, and with it this package, without it.
_CHANGES = ("ChangeSet", "DiffError", "changed_leaves", "diff_taxonomy", "leaf_from_blobs", "open_repo", "read_blob",
            "resolve_commit", "whole_taxonomy")


def __getattr__(name: str):
    if name in _CHANGES:
        from lab_hooks.diff import changes

        return getattr(changes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LeafChange", "Skipped", "leaf_name", *_CHANGES]
