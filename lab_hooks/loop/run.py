"""What every stage of the loop shares: the options, the results being built, the stage timer.

A stage is a function from a typed input to a typed, frozen result. Each result says
what it adds to results.json (`fields()`), whether it was served from the store
(`cached`) and, where the loop must stop on it, why (`problem()`). `Run.stage` is the
one place that times a stage, records its fields and status, and turns a failure into
the report's `failure` (a `StageFailed` is the stage's own verdict, for the PR; any
other exception is an internal error, reported as one). The first failure stops the
run (`Stop`); the results still say which stage failed and why. A LabHooksError (a bad
ref, a backend that refused) is reported with its own one-line message, no traceback.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace

from lab_hooks import __version__
from lab_hooks.errors import LabHooksError, one_line
from lab_hooks.models.specs import EMBEDDED_SPEC
from lab_hooks.report.results import schema_id
from lab_hooks.train.config import TrainConfig
from lab_hooks.train.mix import REPLAY_RATIO


class StageFailed(Exception):
    """A stage's own verdict (bad leaves, nothing generated): the message is for the PR.

    `fields`: what the stage found before it failed (e.g. the validation counts)."""

    def __init__(self, message: str, findings: list[dict] | None = None, fields: dict | None = None):
        super().__init__(message)
        self.findings = findings or []
        self.fields = fields or {}


class Stop(Exception):
    """A stage failed; the run's results already say which and why."""


@dataclass
class PrOptions:
    repo: str = "."
    base: str = "origin/main"
    head: str = "HEAD"
    pr: int | None = None
    teacher: str = EMBEDDED_SPEC
    student: str = EMBEDDED_SPEC
    judge: str = EMBEDDED_SPEC
    quick: int | None = None  # MT-Bench questions per category
    samples_per_seed: int = 3
    sdg_max_tokens: int | None = None
    sdg_judges: str = "auto"  # lab_hooks.sdg.policy: whether the teacher's judge steps filter
    seed: int = TrainConfig.seed  # SDG, training and eval alike
    replay_ratio: float = REPLAY_RATIO
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: dict = field(default_factory=dict)  # eval Settings overrides
    out_dir: str = "lab-hooks-out"
    lab_home: str | None = None
    progress: bool = True

    def train_config(self) -> TrainConfig:
        """The training config, with the run's one seed and its progress setting."""
        return replace(self.train, seed=self.seed, progress=self.progress)


class Run:
    """The results dict being built, and the stage timer that fills `stages`."""

    def __init__(self, opts: PrOptions, stages: tuple[str, ...]):
        self.opts, self.names, self.bar = opts, stages, None
        self.data: dict = {
            "$schema": schema_id(), "status": "ok", "version": __version__, "pr": opts.pr,
            "base": {"ref": opts.base}, "head": {"ref": opts.head},
            "models": {"teacher": opts.teacher, "student": opts.student, "judge": opts.judge},
            "seeds": {"sdg": opts.seed, "train": opts.seed, "eval": opts.seed},
            "stages": [],
        }
        repo, server, run_id = (os.environ.get(k) for k in ("GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "GITHUB_RUN_ID"))
        if repo:
            self.data["repo"] = repo
            self.data["server_url"] = server or "https://github.com"
        if repo and run_id:
            self.data["artifacts_url"] = f"{self.data['server_url']}/{repo}/actions/runs/{run_id}"

    def record(self, fields: dict) -> None:
        """Add a stage's fields to the results (a section that is a dict merges with what is there)."""
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(self.data.get(key), dict):
                self.data[key].update(value)
            else:
                self.data[key] = value

    def stage(self, name: str, fn, *args):
        """Run one stage, timed; its result's fields go into the results; a failure is recorded
        and re-raised as Stop."""
        self._progress(name)
        row = {"name": name, "status": "ok", "seconds": 0.0}
        self.data["stages"].append(row)
        start = time.perf_counter()
        try:
            result = fn(*args)
            self.record(result.fields())
            problem = result.problem()
            if problem:
                raise StageFailed(problem)
            if result.cached:
                row["status"] = "cached"
            return result
        except StageFailed as e:
            self.record(e.fields)
            self._fail(row, name, str(e), e.findings)
        except LabHooksError as e:  # bad input (a ref, a leaf) or a backend that said no: its own one line
            self._fail(row, name, one_line(e), [])
        except Exception as e:  # any crash is still reported on the PR, never a silent job failure
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self._fail(row, name, f"internal error: {detail}", [])
            traceback.print_exc(file=sys.stderr)
        finally:
            row["seconds"] = round(time.perf_counter() - start, 3)
        raise Stop

    def _progress(self, name: str) -> None:
        """One bar over the stages (each stage's own work has its own bar below it)."""
        if not self.opts.progress:
            return
        index, total = len(self.data["stages"]) + 1, len(self.names)
        try:
            from tqdm import tqdm
        except ImportError:  # the core install: plain lines
            return say(f"[{index}/{total}] {name}", True)
        if self.bar is None:
            self.bar = tqdm(total=total, desc="lab-hooks pr", unit="stage", file=sys.stderr, leave=True)
        self.bar.n = index - 1
        self.bar.set_postfix_str(name)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.n = self.bar.total if self.data["status"] == "ok" else self.bar.n
            self.bar.close()

    def _fail(self, row: dict, name: str, reason: str, findings: list[dict]) -> None:
        row["status"] = "failed"
        self.data["status"] = "failed"
        self.data["failure"] = {"stage": name, "reason": reason, "findings": findings}


def say(message: str, progress: bool) -> None:
    if progress:
        print(f"lab-hooks pr {message}", file=sys.stderr, flush=True)
