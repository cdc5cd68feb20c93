"""A PR run's candidate, kept for `promote`: keyed by the taxonomy it was trained on.

The key is a fingerprint of the taxonomy's content, not of the commit, so the
merge commit of a PR whose head was evaluated finds the PR's candidate.
"""

from __future__ import annotations

import hashlib
import json

from lab_hooks.diff import ChangeSet, whole_taxonomy
from lab_hooks.store import artifact_key
from lab_hooks.train.replay import advanced_leaves


def taxonomy_fingerprint(repo, commit: str) -> str:
    """sha256 over every leaf's folder (its git tree sha: the leaf, its attribution and whatever
    else the folder holds) and every in-repo document a knowledge leaf names (its blob sha)."""
    everything = whole_taxonomy(repo, commit)
    folders = {c.path.rpartition("/")[0] for c in everything.leaves}
    documents = {r for c in everything.leaves for r in c.reasons if r.rpartition("/")[0] not in folders}
    pairs = sorted((path, everything.head_sha(path)) for path in folders | documents)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def candidate_key(fingerprint: str) -> str:
    return artifact_key("pr-candidate", taxonomy=fingerprint)


def next_buffer(buffer: dict[str, str], changes: ChangeSet, datasets: dict[str, str]) -> dict[str, str]:
    """Main's buffer once these changes merge: retired leaves out, new datasets in."""
    return advanced_leaves(buffer, datasets, changes.retired)


def remember_candidate(store, repo, head: str, checkpoint: str, parent: str | None, buffer: dict[str, str],
                       pr: int | None) -> None:
    """What `promote` needs to adopt a PR head's candidate: the checkpoint, the main checkpoint
    it was trained from (`parent`, as the run read it before training, not as main is now), and
    main's buffer after the merge. The checkpoint and the buffer's datasets are its
    dependencies: gc keeps them while it lives."""
    store.record_put(candidate_key(taxonomy_fingerprint(repo, head)), {
        "checkpoint": checkpoint, "parent": parent, "head": head, "pr": pr, "buffer": buffer},
        deps=[checkpoint, *buffer.values()])
