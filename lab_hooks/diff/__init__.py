"""Change detection: the leaves a pull request (or the working tree) changes.

    from lab_hooks.diff import diff_taxonomy, changed_leaves

    diff = diff_taxonomy(repo_path, base="origin/main", head="HEAD")   # head=None: working tree
    for change in diff.leaves:          # LeafChange: status, path, blob_sha, old_path, ...
        if change.status != "deleted":
            leaf = diff.read_leaf(change)  # parsed from the blob by sha; raises LeafError
    diff.skipped                        # symlinks and submodules inside the taxonomy

`leaf_from_blobs(repo, path, blob_sha, attribution_sha)` parses any leaf from git
objects; `changed_leaves(...)` is `diff_taxonomy(...).leaves`. Errors the user
can fix (unknown ref, shallow clone) are `DiffError` with a one-line message.
"""

from lab_hooks.diff.changes import (
    DiffError,
    LeafChange,
    Skipped,
    TaxonomyDiff,
    changed_leaves,
    diff_taxonomy,
    leaf_from_blobs,
    open_repo,
    read_blob,
)

__all__ = [
    "DiffError", "LeafChange", "Skipped", "TaxonomyDiff",
    "changed_leaves", "diff_taxonomy", "leaf_from_blobs", "open_repo", "read_blob",
]
