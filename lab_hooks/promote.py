"""`lab-hooks promote --ref main`: after a merge, main's checkpoint and replay buffer advance.

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

import argparse
import hashlib
import json
import stat
import sys
import tempfile
from pathlib import Path

from git import BadName

from lab_hooks.diff import DiffError, LeafChange, diff_taxonomy, leaf_from_blobs
from lab_hooks.diff.changes import open_repo
from lab_hooks.pr import (PrOptions, _generate, _Run, _Stop, at_least, materialize, removed_leaves, train_settings,
                          train_stage)
from lab_hooks.report.escape import log_safe
from lab_hooks.store import Store, StoreError, artifact_key
from lab_hooks.taxonomy.leaf import LEAF_NAMES, taxonomy_path
from lab_hooks.taxonomy.load import LeafError
from lab_hooks.train.replay import advanced_leaves, save_buffer

CHECKPOINT_REF, BUFFER_REF = "main/checkpoint", "main/replay"  # as lab_hooks.train.replay reads them


def _leaf_blobs(repo, commit: str):
    """(leaf file blob, its directory's tree sha) for every leaf in the commit."""
    tree = repo.commit(commit).tree
    for item in tree.traverse():
        if item.type == "blob" and stat.S_ISREG(item.mode) and item.name in LEAF_NAMES \
                and taxonomy_path(item.path)[1] is not None:
            directory = item.path.rpartition("/")[0]
            yield item, (tree / directory) if directory else tree


def taxonomy_fingerprint(repo, commit: str) -> str:
    """sha256 over (leaf directory, its git tree sha) for every leaf in the commit."""
    pairs = sorted((blob.path.rpartition("/")[0], folder.hexsha) for blob, folder in _leaf_blobs(repo, commit))
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def _candidate_key(fingerprint: str) -> str:
    return artifact_key("pr-candidate", taxonomy=fingerprint)


def next_buffer(buffer: dict[str, str], changes: list[dict], datasets: dict[str, str]) -> dict[str, str]:
    """Main's buffer once these changes merge: removed/modified leaves out, new datasets in."""
    return advanced_leaves(buffer, datasets, removed_leaves(changes))


def _datasets(run: dict) -> dict[str, str]:
    return {r["leaf"]: r["artifact"] for r in run["generation"]["leaves"] if r["status"] == "ok"}


def remember_run(store, diff, run: dict, trained) -> None:
    """Called by a successful PR run: its candidate, for `promote` to adopt after the merge."""
    _, _, checkpoint, buffer = trained
    remember_candidate(store, diff.repo, diff.head, checkpoint, next_buffer(buffer, run["changed_leaves"], _datasets(run)),
                       run.get("pr"))


def remember_candidate(store, repo, head: str, checkpoint: str, buffer: dict[str, str], pr: int | None) -> None:
    """What `promote` needs to adopt a PR head's candidate: the checkpoint, the main
    checkpoint it was trained from, and main's buffer after the merge. The checkpoint
    and the buffer's datasets are its dependencies: gc keeps them while it lives."""
    store.record_put(_candidate_key(taxonomy_fingerprint(repo, head)), {
        "checkpoint": checkpoint, "parent": store.get_ref(CHECKPOINT_REF), "head": head, "pr": pr,
        "buffer": buffer}, deps=[checkpoint, *buffer.values()])


def _all_leaves(repo, commit: str) -> list[LeafChange]:
    """Every leaf of a commit as an `added` change (the first promotion has no base)."""
    out = []
    for blob, folder in _leaf_blobs(repo, commit):
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
        candidate = store.record_get(_candidate_key(taxonomy_fingerprint(repo, head)))
        if adoptable(store, candidate, old_checkpoint):
            switch(store, candidate["checkpoint"], head, candidate["buffer"], expect)
            return {"action": "adopted", "commit": head, "checkpoint": candidate["checkpoint"], "pr": candidate["pr"]}
        return _retrain(repo, head, state, store, options or PrOptions(), expect)


def _retrain(repo, head: str, state: dict, store, opts: PrOptions, expect: dict) -> dict:
    """Generate the leaves changed since the last promotion and train main's next checkpoint."""
    opts.repo, opts.head, opts.base = repo.working_tree_dir, head, state.get("commit") or "(nothing promoted yet)"
    changes = diff_taxonomy(repo.working_tree_dir, state["commit"], head).leaves if state.get("commit") \
        else _all_leaves(repo, head)
    run = _Run(opts)
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
                gen = run.stage("generate", 1, 2, _generate, run, leaves, root, store, Path(tmp))
                checkpoint = run.stage("train", 2, 2, train_stage, run, gen, store)[2]
        except _Stop:
            failure = run.data["failure"]
            raise PromoteError(f"stage {failure['stage']} failed: {failure['reason']}") from None
        finally:
            run.close()
    if checkpoint is None:
        raise PromoteError("nothing to promote: main has no checkpoint and no leaf produced data")
    datasets = _datasets(run.data) if "generation" in run.data else {}
    switch(store, checkpoint, head, next_buffer(buffer, run.data["changed_leaves"], datasets), expect)
    return {"action": "retrained", "commit": head, "checkpoint": checkpoint, "unreadable": unreadable,
            "stages": run.data["stages"]}


class PromoteError(Exception):
    """Promotion could not complete; main's refs are untouched."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab-hooks promote", description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="main", help="the merged branch or commit (default: main)")
    p.add_argument("--repo", default=".")
    p.add_argument("--teacher", default="embedded:smollm2-135m-instruct")
    p.add_argument("--student", default="embedded:smollm2-135m-instruct")
    p.add_argument("--samples-per-seed", type=at_least(1), default=3)
    p.add_argument("--replay-ratio", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("full", "lora"), default="full")
    p.add_argument("--max-steps", type=at_least(1))
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    train = train_settings(args)
    opts = PrOptions(teacher=args.teacher, student=args.student, samples_per_seed=args.samples_per_seed,
                     seed=args.seed, replay_ratio=args.replay_ratio, train=train)
    try:
        result = promote(args.repo, args.ref, options=opts)
    except (PromoteError, DiffError, StoreError, ValueError) as e:
        print(log_safe(f"lab-hooks promote: {e}"), file=sys.stderr)
        return 1
    print(log_safe(f"lab-hooks promote: {result['action']} {result['commit'][:12]} -> checkpoint "
                   f"{str(result['checkpoint'])[:12]}"))
    return 0
