"""A PR's training: plan its phases, train them in order, keep the candidate in the store."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

from lab_hooks.store import Store, StoreError, artifact_key
from lab_hooks.store.keys import sha256_tree
from lab_hooks.train.config import TrainConfig
from lab_hooks.train.loop import train
from lab_hooks.train.mix import REPLAY_RATIO, Datasets, Mix, plan_pr


def train_phase(mix: Mix, init_checkpoint: Path, work_dir: Path, config: TrainConfig) -> tuple[Path, dict]:
    """Train one planned phase in `work_dir` (its recipe saved beside), resumable."""
    work_dir.mkdir(parents=True, exist_ok=True)
    recipe = work_dir / "recipe.json"
    if not recipe.exists():
        tmp = recipe.with_suffix(".tmp")
        tmp.write_text(json.dumps(mix.recipe, indent=1))
        os.replace(tmp, recipe)
    checkpoint, summary = train(mix.samples, init_checkpoint, work_dir, config)
    return checkpoint, {
        "phase": mix.phase,
        "recipe_hash": mix.recipe["hash"],
        "new_samples": sum(mix.recipe["new"].values()),
        "replay_samples": sum(mix.recipe["replay"].values()),
        "replay_ratio": mix.recipe["replay_ratio"],
        "new": mix.recipe["new"],
        "replay": mix.recipe["replay"],
        **summary,
    }


def train_pr(
    buffer: Datasets,
    changed: Datasets,
    removed: Iterable[str],
    init_checkpoint: Path,
    work_dir: Path,
    config: TrainConfig,
    *,
    external: Datasets | None = None,
    replay_ratio: float = REPLAY_RATIO,
) -> tuple[Path, dict]:
    """Phase 1 (if knowledge changed) then phase 2; returns (candidate HF dir, summary)."""
    mixes = plan_pr(buffer, changed, removed, external, replay_ratio, config.seed)
    checkpoint, phases = Path(init_checkpoint), []
    for mix in mixes:
        checkpoint, summary = train_phase(mix, checkpoint, Path(work_dir) / f"phase{mix.phase}", config)
        phases.append(summary)
    return checkpoint, {"replay_ratio": replay_ratio, "phases": phases, "trained": bool(mixes)}


def candidate_key(parent: str, mixes: list[Mix], config: TrainConfig) -> str:
    """Checkpoint key: the parent checkpoint + the mix hashes + the training config."""
    return artifact_key(
        "checkpoint", parent=parent, mixes=[m.recipe["hash"] for m in mixes], config=json.loads(json.dumps(config.identity()))
    )


def student_identity(student: Path) -> str:
    """The untrained student as a candidate's parent: its files' hash, not its path, so that
    runners with the model in other folders share keys (and write the same comment)."""
    return f"student:{sha256_tree(student)}"


def train_candidate(
    store: Store,
    buffer: Datasets,
    changed: Datasets,
    removed: Iterable[str],
    student: Path,
    config: TrainConfig,
    *,
    main_key: str | None,
    external: Datasets | None = None,
    replay_ratio: float = REPLAY_RATIO,
    is_main_process: bool = True,
) -> tuple[str | None, Path, dict]:
    """The PR loop's call: train from main's checkpoint `main_key` (None: `student`) into the store.

    The caller reads main's checkpoint once, with the buffer it pairs with, and records it
    as the candidate's parent: the checkpoint this run actually starts from.
    Returns (checkpoint key or None when there was nothing to train, HF dir, summary).
    Computed once per key; a killed run resumes from its work dir under the store.
    """
    init = store.get(main_key) if main_key else Path(student)
    if init is None:
        raise StoreError(f"main/checkpoint points at {main_key[:12]}, which is not in the store (run `lab-hooks store verify`)")
    parent = main_key or student_identity(student)
    removed = list(removed)
    mixes = plan_pr(buffer, changed, removed, external, replay_ratio, config.seed)
    if not mixes:
        return None, init, {"replay_ratio": replay_ratio, "phases": [], "trained": False}
    key = candidate_key(parent, mixes, config)
    done = store.get(key)
    if done is not None:
        return key, done, _summary(done)
    # One job at a time trains a key (across processes and runners): two jobs never share the
    # work dir and its resume file; the one that waited finds the checkpoint done. (The
    # checkpoint's own key lock is taken by `store.build`, so the work has a lock of its own.)
    with store.lock(artifact_key("training", checkpoint=key)) if is_main_process else nullcontext():
        done = store.get(key)
        if done is not None:
            return key, done, _summary(done)
        work = store.home / "work" / "train" / key
        checkpoint, summary = train_pr(buffer, changed, removed, init, work, config, external=external,
                                       replay_ratio=replay_ratio)
        summary = {"parent": parent, "config": asdict(config), **summary}
        if is_main_process:
            # A checkpoint is self-contained (a full HF dir): its parent is provenance in meta,
            # not a gc dependency, so main's line of ancestors does not pin every old checkpoint.
            meta = {"parent": parent, "mixes": [m.recipe["hash"] for m in mixes]}
            with store.build(key, kind="checkpoint", meta=meta) as tmp:
                shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
                for mix in mixes:
                    (tmp / f"recipe-phase{mix.phase}.json").write_text(json.dumps(mix.recipe, indent=1))
                (tmp / "pr-summary.json").write_text(json.dumps(summary, indent=2, default=str))
            shutil.rmtree(work, ignore_errors=True)
    return key, store.get(key) or checkpoint, summary


def _summary(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "pr-summary.json").read_text())
