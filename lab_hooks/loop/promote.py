"""Promotion after a merge: main's checkpoint and replay buffer advance.

Main's state in the store is two refs that always move together, in one
transaction (`Store.set_refs`, a compare-and-swap): `main/checkpoint` (a
checkpoint artifact) and `main/replay` (a record {"leaves": {leaf name: SDG
artifact key}, "commit": the promoted sha}, read by lab_hooks.train.replay).
The buffer record and a PR's candidate record name their checkpoint and datasets
as store dependencies, so `store gc` keeps whatever main's state (or a candidate
waiting for its merge) needs. A kill -9 leaves all old or all new.

- When a PR run's head had exactly the taxonomy main has now (the same content
  for every leaf and its documents) and was trained from main's current
  checkpoint, its candidate is adopted as is: no compute.
- Otherwise main retrains: the leaves changed since the last promoted commit
  (all leaves the first time) are generated, and phase 2 (phase 1 first for
  knowledge) trains on them plus replay from main's buffer.
The buffer gains the new leaves' datasets and loses deleted and modified leaves' old ones.
Two promotions at once (runners sharing a store): the one that switches second finds
main moved, writes nothing and starts over from main's new state; main never moves to
a commit older than the one it holds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import git

from lab_hooks.diff import diff_taxonomy, open_repo, resolve_commit, whole_taxonomy
from lab_hooks.errors import LabHooksError
from lab_hooks.loop.candidate import candidate_key, next_buffer, taxonomy_fingerprint
from lab_hooks.loop.generate import GenerateJob
from lab_hooks.loop.run import PrOptions, Run, Stop
from lab_hooks.loop.stages import Stages
from lab_hooks.loop.train import TrainJob
from lab_hooks.loop.validate import materialize
from lab_hooks.store import RefsMoved, Store
from lab_hooks.train.replay import BUFFER_REF, CHECKPOINT_REF, MainState, read_main, save_buffer

STAGES = ("generate", "train")
ATTEMPTS = 3  # promotions that find main moved by another one start over, this many times at most


class PromoteError(LabHooksError):
    """Promotion could not complete; main's refs are untouched."""


def switch(store, checkpoint: str, commit: str, buffer: dict[str, str], expect: dict) -> str:
    """Point main at the new checkpoint and buffer in one transaction; returns the record key."""
    record = save_buffer(store, buffer, commit=commit)
    store.set_refs({CHECKPOINT_REF: checkpoint, BUFFER_REF: record}, expect=expect)
    return record


def adoptable(store, candidate: dict | None, main_checkpoint: str | None) -> bool:
    """A PR's candidate can become main's checkpoint as is: trained from main's current
    checkpoint (else it lacks what merged since) and still in the store."""
    return bool(candidate) and candidate["parent"] == main_checkpoint and store.get(candidate["checkpoint"]) is not None


def promote(repo_path: str, ref: str, store=None, options: PrOptions | None = None,
            stages: Stages = Stages()) -> dict:
    """Advance main to `ref`; returns what happened ({"action": adopted|retrained|current, ...}).

    Main's refs move by compare-and-swap from the state this promotion read: when another
    promotion moved them meanwhile, nothing is written and it starts over from main's new
    state (which is `current` when that already contains `ref`, so main never moves back)."""
    store = store if store is not None else Store()
    repo = open_repo(repo_path)
    head = resolve_commit(repo, ref, "promoted").hexsha
    with store.run("promote", {"ref": ref, "commit": head}):  # no gc meanwhile
        for _ in range(ATTEMPTS):
            try:
                return _promote_once(repo, head, store, options or PrOptions(), stages)
            except RefsMoved:
                continue
    raise PromoteError(f"main moved during each of {ATTEMPTS} attempts to promote {head[:12]}; "
                       "its refs are as the other promotions left them: run promote again")


def _promote_once(repo, head: str, store, opts: PrOptions, stages: Stages) -> dict:
    main = read_main(store)
    if main.commit and _contains(repo, main.commit, head):
        return {"action": "current", "commit": main.commit, "checkpoint": main.checkpoint}
    candidate = store.record_get(candidate_key(taxonomy_fingerprint(repo, head)))
    if adoptable(store, candidate, main.checkpoint):
        switch(store, candidate["checkpoint"], head, candidate["buffer"], main.refs)
        return {"action": "adopted", "commit": head, "checkpoint": candidate["checkpoint"], "pr": candidate["pr"]}
    return _retrain(repo, head, main, store, opts, stages)


def _contains(repo, commit: str, other: str) -> bool:
    """Whether `commit` is `other` or has it in its history (False when `commit` is unknown here)."""
    try:
        return commit == other or repo.is_ancestor(other, commit)
    except git.GitCommandError:
        return False


def _retrain(repo, head: str, main: MainState, store, opts: PrOptions, stages: Stages) -> dict:
    """Generate the leaves changed since the last promotion and train main's next checkpoint."""
    changes = diff_taxonomy(repo, main.commit, head) if main.commit else whole_taxonomy(repo, head)
    leaves = changes.read_all()
    run = Run(opts, STAGES)
    checkpoint, datasets = main.checkpoint, {}
    with tempfile.TemporaryDirectory(prefix="lab-hooks-promote-") as tmp:
        try:
            if leaves:
                root = materialize(repo, head, head, Path(tmp) / "taxonomy")
                generated = run.stage("generate", stages.generate, GenerateJob(
                    tuple(leaves), opts.teacher, store, Path(tmp) / "sdg", root, opts.samples_per_seed, opts.seed,
                    opts.sdg_max_tokens, opts.progress, judges=opts.sdg_judges))
                datasets = generated.datasets()
                checkpoint = run.stage("train", stages.train, TrainJob(
                    store, main, opts.student, {r.leaf: r.dataset for r in generated.leaves if r.ok}, changes.retired,
                    opts.train_config(), opts.replay_ratio)).checkpoint
        except Stop:
            failure = run.data["failure"]
            raise PromoteError(f"stage {failure['stage']} failed: {failure['reason']}") from None
        finally:
            run.close()
    if checkpoint is None:
        raise PromoteError("nothing to promote: main has no checkpoint and no leaf produced data")
    switch(store, checkpoint, head, next_buffer(main.buffer, changes, datasets), main.refs)
    return {"action": "retrained", "commit": head, "checkpoint": checkpoint, "stages": run.data["stages"]}
