"""The plan stage: which leaves the PR changes (the diff), and the leaf names that follow from it."""

from __future__ import annotations

import os


def plan(run):
    from lab_hooks.diff import diff_taxonomy

    opts = run.opts
    diff = diff_taxonomy(opts.repo, opts.base, opts.head)
    run.data["base"]["sha"] = diff.base
    run.data["head"]["sha"] = diff.head
    run.data["changed_leaves"] = [
        {"path": c.path, "change": c.status, "kind": c.kind.value if c.kind else None, "blob_sha": c.blob_sha,
         "old_path": c.old_path} for c in diff.leaves]
    run.data["skipped"] = [{"path": s.path, "reason": s.reason} for s in diff.skipped]
    return diff


def leaf_name(path: str) -> str:
    from lab_hooks.taxonomy.leaf import taxonomy_path

    return os.path.dirname(taxonomy_path(path)[0])


def leaf_names(changes: list[dict], statuses: tuple[str, ...]) -> set[str]:
    return {leaf_name(c["path"]) for c in changes if c["change"] in statuses}


def removed_leaves(changes: list[dict]) -> set[str]:
    """Leaves whose old samples must leave the replay side: modified, deleted, renamed-from."""
    return leaf_names(changes, ("modified", "deleted")) | {leaf_name(c["old_path"]) for c in changes
                                                          if c.get("old_path")}
