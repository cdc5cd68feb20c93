"""The generate stage: synthetic data for the changed leaves (lab_hooks.sdg), cached in the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_hooks.taxonomy.leaf import Leaf


@dataclass(frozen=True)
class GenerateJob:
    leaves: tuple[Leaf, ...]
    teacher: str  # model spec
    store: Any
    out_dir: Path  # per-leaf messages.jsonl, records.jsonl, stats.json
    taxonomy_root: Path  # where in-repo documents are read
    samples_per_seed: int = 3
    seed: int = 0
    max_tokens: int | None = None
    progress: bool = True
    judges: str = "auto"  # lab_hooks.sdg.policy: whether the teacher's judge steps filter


@dataclass(frozen=True)
class LeafData:
    leaf: str  # the leaf's name
    status: str  # "ok", else why the leaf has no data
    candidates: int = 0
    accepted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # filter step -> samples it removed
    artifact: str | None = None  # store key of the leaf's data
    dataset: Path | None = None  # its messages.jsonl
    judges: dict | None = None  # {applied, reason}: whether judge verdicts filtered (lab_hooks.sdg.policy)
    examples: dict = field(default_factory=dict)  # a few accepted and dropped samples, each dropped one with why
    held_out: tuple[int, ...] = ()  # indices of the seeds kept out of generation (eval.reference)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Generated:
    teacher: str
    leaves: tuple[LeafData, ...]
    teacher_calls: int  # 0: everything came from the store

    @property
    def cached(self) -> bool:
        return self.teacher_calls == 0

    def datasets(self) -> dict[str, str]:
        """{leaf: artifact key} of the leaves that produced data."""
        return {r.leaf: r.artifact for r in self.leaves if r.ok}

    def fields(self) -> dict:
        rows = [{"leaf": r.leaf, "candidates": r.candidates, "accepted": r.accepted, "dropped": dict(r.dropped),
                 "status": r.status, "artifact": r.artifact, "judges": r.judges, "examples": r.examples,
                 "held_out_seeds": list(r.held_out)} for r in self.leaves]
        return {"generation": {"teacher": self.teacher, "leaves": rows, "teacher_calls": self.teacher_calls}}

    def problem(self) -> str | None:
        if any(r.ok for r in self.leaves):
            return None
        return "no changed leaf produced any accepted sample: " + "; ".join(f"{r.leaf}: {r.status}" for r in self.leaves)


def generate(job: GenerateJob) -> Generated:
    """The LAB pipelines on the teacher, through lab_hooks.sdg; each leaf without the seeds the
    evaluation holds out to measure it on (lab_hooks.eval.reference)."""
    from lab_hooks.eval.reference import held_out_seeds, training_view
    from lab_hooks.sdg import generate_leaves

    held = {leaf.name: tuple(sorted(held_out_seeds(leaf))) for leaf in job.leaves if leaf.kind and leaf.kind.is_skill}
    result = generate_leaves([training_view(leaf) for leaf in job.leaves], job.teacher, job.store, out_dir=job.out_dir,
                             samples_per_seed=job.samples_per_seed, seed=job.seed, max_tokens=job.max_tokens,
                             judges=job.judges, taxonomy_root=job.taxonomy_root, progress=job.progress)
    rows = tuple(LeafData(dataset=r.dataset, held_out=held.get(r.leaf, ()), **r.report()) for r in result.leaves)
    return Generated(job.teacher, rows, result.calls)
