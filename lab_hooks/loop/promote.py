"""Promotion after a merge: main's checkpoint and replay buffer advance.

Main's state in the store is two refs that always move together, in one
transaction (`Store.set_refs`, a compare-and-swap): `main/checkpoint` (a
checkpoint artifact) and `main/replay` (a record {"leaves": {leaf name: SDG
artifact key}, "commit": the promoted sha}, read by lab_hooks.train.replay).
The buffer record and a PR's candidate record name their checkpoint and datasets
as store dependencies, so `store gc` keeps whatever main's state (or a candidate
waiting for its merge) needs. A kill -9 leaves all old or all new.

- When a PR run's head had exactly the taxonomy main has now (the same git tree
  sha for every leaf directory) and was trained from main's current
  checkpoint, its candidate is adopted as is: no compute.
- Otherwise main retrains: the leaves changed since the last promoted commit
  (all leaves the first time) are generated, and phase 2 (phase 1 first for
  knowledge) trains on them plus replay from main's buffer.
The buffer gains the new leaves' datasets and loses deleted and modified leaves' old ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from git import BadName

from lab_hooks.diff import LeafChange, diff_taxonomy, leaf_from_blobs
from lab_hooks.diff.changes import open_repo
from lab_hooks.loop.candidate import candidate_key, datasets, leaf_blobs, next_buffer, taxonomy_fingerprint
from lab_hooks.loop.generate import generate
from lab_hooks.loop.run import PrOptions, Run, Stop
from lab_hooks.loop.train import train
from lab_hooks.loop.validate import materialize
from lab_hooks.store import Store
from lab_hooks.taxonomy.load import LeafError
from lab_hooks.train.replay import BUFFER_REF, CHECKPOINT_REF, save_buffer


def _all_leaves(repo, commit: str) -> list[LeafChange]:
    """Every leaf of a commit as an `added` change (the first promotion has no base)."""
    out = []
    for blob, folder in leaf_blobs(repo, commit):
        try:
            attribution = (folder / "attribution.txt").hexsha
        except KeyError:
            attribution = None
        out.append(LeafChange("added", blob.path, blob.hexsha, attribution_sha=attribution))
    return out


def switch(store, checkpoint: str, commit: str, buffer: dict[str, str], expect: dict) -> str:
    """Point main at the new checkpoint and buffer in one transaction; returns the record key."""
    record = save_buffer(store, buffer, commit=commit)
    store.set_refs({CHECKPOINT_REF: checkpoint, BUFFER_REF: record}, expect=expect)
    return record


def adoptable(store, candidate: dict | None, main_checkpoint: str | None) -> bool:
    """A PR's candidate can become main's checkpoint as is: trained from main's current
    checkpoint (else it lacks what merged since) and still in the store."""
    return bool(candidate) and candidate["parent"] == main_checkpoint and store.get(candidate["checkpoint"]) is not None


def promote(repo_path: str, ref: str, store=None, options: PrOptions | None = None) -> dict:
    """Advance main to `ref`; returns what happened ({"action": adopted|retrained|current, ...})."""
    store = store if store is not None else Store()
    repo = open_repo(repo_path)
    try:
        head = repo.commit(ref).hexsha
    except (ValueError, BadName):
        raise PromoteError(f"{ref}: no such branch or commit in {repo.working_tree_dir}") from None
    with store.run("promote", {"ref": ref, "commit": head}):  # no gc meanwhile
        old_checkpoint, old_replay = store.get_ref(CHECKPOINT_REF), store.get_ref(BUFFER_REF)
        expect = {CHECKPOINT_REF: old_checkpoint, BUFFER_REF: old_replay}
        state = (store.record_get(old_replay) if old_replay else None) or {}
        if state.get("commit") == head:
            return {"action": "current", "commit": head, "checkpoint": old_checkpoint}
        candidate = store.record_get(candidate_key(taxonomy_fingerprint(repo, head)))
        if adoptable(store, candidate, old_checkpoint):
            switch(store, candidate["checkpoint"], head, candidate["buffer"], expect)
            return {"action": "adopted", "commit": head, "checkpoint": candidate["checkpoint"], "pr": candidate["pr"]}
        return _retrain(repo, head, state, store, options or PrOptions(), expect)


def _retrain(repo, head: str, state: dict, store, opts: PrOptions, expect: dict) -> dict:
    """Generate the leaves changed since the last promotion and train main's next checkpoint."""
    opts.repo, opts.head, opts.base = repo.working_tree_dir, head, state.get("commit") or "(nothing promoted yet)"
    changes = diff_taxonomy(repo.working_tree_dir, state["commit"], head).leaves if state.get("commit") \
        else _all_leaves(repo, head)
    run = Run(opts)
    run.data["changed_leaves"] = [{"path": c.path, "change": c.status, "old_path": c.old_path} for c in changes]
    leaves, unreadable = [], []
    for c in changes:
        if c.status != "deleted":
            try:
                leaves.append(leaf_from_blobs(repo, c.path, c.blob_sha, c.attribution_sha))
            except LeafError as e:
                unreadable.append(f"{c.path}: {e}")
    buffer = dict((state.get("leaves") or {}))
    checkpoint = expect[CHECKPOINT_REF]
    with tempfile.TemporaryDirectory(prefix="lab-hooks-promote-") as tmp:
        try:
            if leaves:
                root = materialize(repo, head, head, Path(tmp) / "taxonomy")
                gen = run.stage("generate", 1, 2, generate, run, leaves, root, store, Path(tmp))
                checkpoint = run.stage("train", 2, 2, train, run, gen, store)[2]
        except Stop:
            failure = run.data["failure"]
            raise PromoteError(f"stage {failure['stage']} failed: {failure['reason']}") from None
        finally:
            run.close()
    if checkpoint is None:
        raise PromoteError("nothing to promote: main has no checkpoint and no leaf produced data")
    found = datasets(run.data) if "generation" in run.data else {}
    switch(store, checkpoint, head, next_buffer(buffer, run.data["changed_leaves"], found), expect)
    return {"action": "retrained", "commit": head, "checkpoint": checkpoint, "unreadable": unreadable,
            "stages": run.data["stages"]}


class PromoteError(Exception):
    """Promotion could not complete; main's refs are untouched."""
