"""A PR run's candidate, kept for `promote`: keyed by the taxonomy it was trained on.

The key is a fingerprint of the leaves' git trees, not the commit, so the merge
commit of a PR whose head was evaluated finds the PR's candidate.
"""

from __future__ import annotations

import hashlib
import json
import stat

from lab_hooks.loop.plan import removed_leaves
from lab_hooks.store import artifact_key
from lab_hooks.taxonomy.leaf import LEAF_NAMES, taxonomy_path
from lab_hooks.train.replay import CHECKPOINT_REF, advanced_leaves


def leaf_blobs(repo, commit: str):
    """(leaf file blob, its directory's tree sha) for every leaf in the commit."""
    tree = repo.commit(commit).tree
    for item in tree.traverse():
        if item.type == "blob" and stat.S_ISREG(item.mode) and item.name in LEAF_NAMES \
                and taxonomy_path(item.path)[1] is not None:
            directory = item.path.rpartition("/")[0]
            yield item, (tree / directory) if directory else tree


def taxonomy_fingerprint(repo, commit: str) -> str:
    """sha256 over (leaf directory, its git tree sha) for every leaf in the commit."""
    pairs = sorted((blob.path.rpartition("/")[0], folder.hexsha) for blob, folder in leaf_blobs(repo, commit))
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def candidate_key(fingerprint: str) -> str:
    return artifact_key("pr-candidate", taxonomy=fingerprint)


def next_buffer(buffer: dict[str, str], changes: list[dict], datasets: dict[str, str]) -> dict[str, str]:
    """Main's buffer once these changes merge: removed/modified leaves out, new datasets in."""
    return advanced_leaves(buffer, datasets, removed_leaves(changes))


def datasets(run: dict) -> dict[str, str]:
    return {r["leaf"]: r["artifact"] for r in run["generation"]["leaves"] if r["status"] == "ok"}


def remember_run(store, diff, run: dict, trained) -> None:
    """Called by a successful PR run: its candidate, for `promote` to adopt after the merge."""
    _, _, checkpoint, buffer = trained
    remember_candidate(store, diff.repo, diff.head, checkpoint, next_buffer(buffer, run["changed_leaves"], datasets(run)),
                       run.get("pr"))


def remember_candidate(store, repo, head: str, checkpoint: str, buffer: dict[str, str], pr: int | None) -> None:
    """What `promote` needs to adopt a PR head's candidate: the checkpoint, the main
    checkpoint it was trained from, and main's buffer after the merge. The checkpoint
    and the buffer's datasets are its dependencies: gc keeps them while it lives."""
    store.record_put(candidate_key(taxonomy_fingerprint(repo, head)), {
        "checkpoint": checkpoint, "parent": store.get_ref(CHECKPOINT_REF), "head": head, "pr": pr,
        "buffer": buffer}, deps=[checkpoint, *buffer.values()])
