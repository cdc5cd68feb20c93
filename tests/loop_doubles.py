"""Small deterministic stages for the loop's own tests (lab_hooks.loop.stages.Stages).

They keep the contract the real stages keep — results in the store under keys of
what determines them, `cached` when served from it — but make no model call, so a
whole PR run or promotion takes a fraction of a second. They are for testing the
loop's logic only: every stage itself is tested on real models in its own tests.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab_hooks.loop.evaluate import EvaluateJob, Evaluated
from lab_hooks.loop.generate import GenerateJob, Generated, LeafData
from lab_hooks.loop.stages import Stages
from lab_hooks.loop.train import Trained, TrainJob
from lab_hooks.store import artifact_key


@dataclass
class Doubles:
    """The three stages, with a log of their calls and hooks a test can set."""

    calls: list = field(default_factory=list)
    fail: str | None = None  # the stage that raises
    empty: bool = False  # generate accepts nothing
    during_train: object = None  # called inside train (e.g. a promotion racing it)
    block_train: Path | None = None  # train waits until this file exists (a kill -9 target)

    def stages(self) -> Stages:
        return Stages(generate=self.generate, train=self.train, evaluate=self.evaluate)

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.fail == name:
            raise RuntimeError(f"{name} double broke")

    def generate(self, job: GenerateJob) -> Generated:
        self._enter("generate")
        rows, built = [], 0
        for leaf in sorted(job.leaves, key=lambda lf: lf.name):
            samples = [] if self.empty else [{"messages": [{"role": "user", "content": e.question},
                                                           {"role": "assistant", "content": e.answer}]}
                                              for e in leaf.examples]
            text = "".join(json.dumps(s) + "\n" for s in samples)
            key = artifact_key("sdg-leaf", double=text, leaf=leaf.name, teacher=job.teacher, seed=job.seed)
            if job.store.get(key) is None:
                built += 1
            path = job.store.ensure(key, lambda out: (out / "messages.jsonl").write_text(text), kind="sdg-leaf")
            rows.append(LeafData(leaf.name, "ok" if samples else "all samples filtered out", len(leaf.examples),
                                 len(samples), {} if samples else {"judge": len(leaf.examples)}, key,
                                 path / "messages.jsonl"))
        return Generated(job.teacher, tuple(rows), built)

    def train(self, job: TrainJob) -> Trained:
        self._enter("train")
        if self.during_train:
            self.during_train()
        data = {leaf: Path(p).read_text() for leaf, p in sorted(job.new_data.items())}
        replay = {leaf: key for leaf, key in job.main.buffer.items() if leaf not in job.retired and leaf not in data}
        key = artifact_key("checkpoint", double=data, parent=job.main.checkpoint, replay=replay,
                           config=json.loads(json.dumps(job.config.identity())))
        cached = job.store.get(key) is not None

        def build(out: Path) -> None:
            while self.block_train and not self.block_train.exists():
                time.sleep(0.01)
            (out / "trained-on.json").write_text(json.dumps({"new": sorted(data), "replay": sorted(replay),
                                                             "parent": job.main.checkpoint}))

        path = job.store.ensure(key, build, kind="checkpoint")
        phases = ({"phase": 2, "new_samples": sum(t.count("\n") for t in data.values()),
                   "replay_samples": len(replay), "replay_ratio": job.replay_ratio, "steps": 1,
                   "loss_first": 2.0, "loss_last": 1.0},)
        return Trained(job.student, job.main.checkpoint, key, path, job.config.method, phases, len(job.main.buffer),
                       cached)

    def evaluate(self, job: EvaluateJob) -> Evaluated:
        self._enter("evaluate")
        key = artifact_key("eval-double", base=job.base, candidate=job.candidate,
                           leaves=sorted(leaf.name for leaf in job.changed))
        cached = job.store.record_get(key) is not None
        leaves = [{"leaf": leaf.name, "change": "new" if leaf.name in job.new else "modified", "n_questions": 5,
                   "base": 4.0, "candidate": 6.0, "delta": 2.0, "ci": [1.0, 3.0], "verdict": "improved"}
                  for leaf in sorted(job.changed, key=lambda lf: lf.name)]
        job.store.record_put(key, {"leaves": leaves})
        results = {"branch": {"leaves": leaves, "errors": {}}, "timings": {"steps": [{"cached": cached}]}}
        return Evaluated(results, cached)


def pid_file_stage(path: Path):
    """A `during_train` hook that says the stage is running (for a test that kills it)."""
    return lambda: path.write_text(str(os.getpid()))
