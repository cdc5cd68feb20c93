"""The train stage: phase 2 (phase 1 first for knowledge) from main's checkpoint with replay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_hooks.train.mix import REPLAY_RATIO
from lab_hooks.train.replay import MainState

if TYPE_CHECKING:
    from lab_hooks.train.config import TrainConfig


@dataclass(frozen=True)
class TrainJob:
    store: Any
    main: MainState  # read once per run: the checkpoint trained from and the buffer replayed
    student: str  # model spec: the start when main has no checkpoint
    new_data: dict[str, Path]  # {leaf: messages.jsonl} of the changed leaves
    retired: frozenset[str]  # leaves whose old data is not replayed (modified, deleted, renamed-from)
    config: TrainConfig
    replay_ratio: float = REPLAY_RATIO


@dataclass(frozen=True)
class Trained:
    student: str
    parent: str | None  # main's checkpoint this candidate was trained from (None: the student)
    checkpoint: str | None  # the candidate's key; None: nothing to train
    path: Path | None  # its HF dir
    method: str
    phases: tuple[dict, ...]
    replay_buffer_leaves: int
    cached: bool = False

    def fields(self) -> dict:
        keep = ("phase", "new_samples", "replay_samples", "replay_ratio", "replay", "steps", "loss_first",
                "loss_last", "dropped", "tokens_per_s", "wall_s", "world_size")
        return {"training": {"method": self.method, "parent": self.parent[:12] if self.parent else self.student,
                             "replay_buffer_leaves": self.replay_buffer_leaves,
                             "replay_samples": sum(p["replay_samples"] for p in self.phases),
                             "phases": [{k: p.get(k) for k in keep} for p in self.phases]},
                "models": {"base_checkpoint": self.parent or self.student, "candidate_checkpoint": self.checkpoint}}

    def problem(self) -> str | None:
        return None if self.checkpoint else "nothing to train: the changed leaves produced no phase-2 samples"


def served_spec(student: str, checkpoint: Path) -> str:
    """Serve a trained checkpoint the way the student is served: vLLM stays vLLM, with the
    student's options (tensor_parallel_size, gpu_memory_utilization, ...)."""
    kind, _, rest = student.partition(":")
    options = rest.partition("?")[2] if kind in ("hf", "vllm") else ""
    return f"{'vllm' if kind == 'vllm' else 'hf'}:{checkpoint}" + (f"?{options}" if options else "")


def train(job: TrainJob) -> Trained:
    """lab_hooks.train from main's checkpoint, replaying main's buffer; the candidate lands in the store."""
    from lab_hooks.train.cli import student_dir
    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.replay import load_datasets, read_jsonl

    store, main = job.store, job.main
    before = {a.key for a in store.artifacts("checkpoint")}
    key, checkpoint, summary = train_candidate(
        store, load_datasets(store, main.buffer), {leaf: read_jsonl(path) for leaf, path in job.new_data.items()},
        job.retired, student_dir(job.student), job.config, main_key=main.checkpoint, replay_ratio=job.replay_ratio)
    return Trained(job.student, main.checkpoint, key, checkpoint if key else None, job.config.method,
                   tuple(summary["phases"]), len(main.buffer), cached=key in before)
