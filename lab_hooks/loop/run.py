"""What every stage of the PR loop shares: the options, the results being built, the stage timer.

The first stage that fails stops the run (`Stop`); the results still say which
stage failed and why. A `StageFailed` is a stage's own verdict (bad leaves,
nothing generated); any other exception is reported as an internal error.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field

from lab_hooks import __version__

EMBEDDED = "embedded:smollm2-135m-instruct"


class StageFailed(Exception):
    """A stage's own verdict (bad leaves, nothing generated): the message is for the PR."""

    def __init__(self, message: str, findings: list[dict] | None = None):
        super().__init__(message)
        self.findings = findings or []


@dataclass
class PrOptions:
    repo: str = "."
    base: str = "origin/main"
    head: str = "HEAD"
    pr: int | None = None
    teacher: str = EMBEDDED
    student: str = EMBEDDED
    judge: str = EMBEDDED
    quick: int | None = None  # MT-Bench questions per category
    samples_per_seed: int = 3
    sdg_max_tokens: int | None = None
    seed: int = 0
    replay_ratio: float = 1.0
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    eval: dict = field(default_factory=dict)  # eval Settings overrides
    out_dir: str = "lab-hooks-out"
    lab_home: str | None = None
    progress: bool = True


class Run:
    """The results dict being built, and the stage timer that fills `stages`."""

    def __init__(self, opts: PrOptions):
        self.opts = opts
        self.data: dict = {
            "status": "ok", "version": __version__, "pr": opts.pr,
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

    def stage(self, name: str, index: int, total: int, fn, *args):
        """Run one stage, timed; a failure is recorded and re-raised as Stop."""
        self._progress(name, index, total)
        row = {"name": name, "status": "ok", "seconds": 0.0}
        self.data["stages"].append(row)
        start = time.perf_counter()
        try:
            result = fn(*args)
            if isinstance(result, tuple) and result and result[0] == "cached":
                row["status"], result = "cached", result[1]
            return result
        except StageFailed as e:
            self._fail(row, name, str(e), e.findings)
        except Exception as e:  # any crash is still reported on the PR, never a silent job failure
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self._fail(row, name, f"internal error: {detail}", [])
            traceback.print_exc(file=sys.stderr)
        finally:
            row["seconds"] = round(time.perf_counter() - start, 3)
        raise Stop

    def _progress(self, name: str, index: int, total: int) -> None:
        """One bar over the stages (each stage's own work has its own bar below it)."""
        if not self.opts.progress:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # the core install: plain lines
            return say(f"[{index}/{total}] {name}", True)
        if getattr(self, "bar", None) is None:
            self.bar = tqdm(total=total, desc="lab-hooks pr", unit="stage", file=sys.stderr, leave=True)
        self.bar.n = index - 1
        self.bar.set_postfix_str(name)

    def close(self) -> None:
        if getattr(self, "bar", None) is not None:
            self.bar.n = self.bar.total if self.data["status"] == "ok" else self.bar.n
            self.bar.close()

    def _fail(self, row: dict, name: str, reason: str, findings: list[dict]) -> None:
        row["status"] = "failed"
        self.data["status"] = "failed"
        self.data["failure"] = {"stage": name, "reason": reason, "findings": findings}


class Stop(Exception):
    """A stage failed; the run's results already say which and why."""


def say(message: str, progress: bool) -> None:
    if progress:
        print(f"lab-hooks pr {message}", file=sys.stderr, flush=True)
