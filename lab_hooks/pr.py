"""`lab-hooks pr`: the whole PR loop, diff → validate → generate → train → evaluate → report.

    run = run_pr(PrOptions(repo=".", base="origin/main", head=sha, pr=12))
    run["status"], run["failure"], run["stages"]      # the plain dict the comment renders

The PR's content is data: leaves are read from git objects by sha (the diff) and
written as plain files into a private folder only so the validator can read
them; nothing of the PR is checked out, imported or executed, and the rules
come from the base side's config, not the PR's. Every stage is timed; the
first that fails stops the run and the report still says which stage and why.
Main's state comes from the store: ref `main/checkpoint` (the student when
unset) and `main/replay` (a JSON record {leaf name: dataset artifact key}).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from lab_hooks import __version__
from lab_hooks.report.comment import render_comment
from lab_hooks.report.escape import log_safe
from lab_hooks.report.summary import findings_as_dicts, set_outputs, write_step_summary

EMBEDDED = "embedded:smollm2-135m-instruct"
CONFIG_FILES = (".lab-hooks.yaml", "pyproject.toml")  # where a taxonomy repo's rules live
MAX_MATERIALIZED_BYTES = 512 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024
MAIN_CHECKPOINT, MAIN_REPLAY = "main/checkpoint", "main/replay"


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
    seed: int = 0
    replay_ratio: float = 1.0
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    eval: dict = field(default_factory=dict)  # eval Settings overrides
    out_dir: str = "lab-hooks-out"
    lab_home: str | None = None
    progress: bool = True


class _Run:
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
        """Run one stage, timed; a failure is recorded and re-raised as _Stop."""
        _say(f"[{index}/{total}] {name}", self.opts.progress)
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
        raise _Stop

    def _fail(self, row: dict, name: str, reason: str, findings: list[dict]) -> None:
        row["status"] = "failed"
        self.data["status"] = "failed"
        self.data["failure"] = {"stage": name, "reason": reason, "findings": findings}


class _Stop(Exception):
    pass


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"lab-hooks pr {message}", file=sys.stderr, flush=True)


# -- stages ---------------------------------------------------------------------

def _diff(run: _Run):
    from lab_hooks.diff import diff_taxonomy

    opts = run.opts
    diff = diff_taxonomy(opts.repo, opts.base, opts.head)
    run.data["base"]["sha"] = diff.base
    run.data["head"]["sha"] = diff.head
    run.data["changed_leaves"] = [
        {"path": c.path, "change": c.status, "kind": c.kind.value if c.kind else None, "blob_sha": c.blob_sha,
         "old_path": c.old_path} for c in diff.leaves]
    run.data["skipped"] = [{"path": s.path, "reason": s.reason} for s in diff.skipped]
    return diff


def materialize(repo, head_sha: str, base_sha: str, dest: Path) -> Path:
    """The head tree's regular files under `dest`, as plain data; the base side's config.

    Symlinks and submodules are not written (the diff reports them); a file over
    the size limit is skipped; the total is bounded. Only the validator reads these.
    """
    total = 0
    for item in repo.commit(head_sha).tree.traverse():
        if item.type != "blob" or not stat.S_ISREG(item.mode) or item.size > MAX_FILE_BYTES:
            continue
        if item.path in CONFIG_FILES:
            continue
        total += item.size
        if total > MAX_MATERIALIZED_BYTES:
            raise StageFailed(f"the PR's tree is over {MAX_MATERIALIZED_BYTES // 2**20} MiB")
        target = dest / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.data_stream.read())
    base_tree = repo.commit(base_sha).tree
    for name in CONFIG_FILES:  # the rules are the base branch's, not what the PR says they are
        try:
            blob = base_tree / name
        except KeyError:
            continue
        if blob.type == "blob" and stat.S_ISREG(blob.mode):
            (dest / name).write_bytes(blob.data_stream.read())
    return dest


def _validate(run: _Run, diff, workdir: Path):
    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files
    from lab_hooks.checks.registry import load_checks

    root = materialize(diff.repo, diff.head, diff.base, workdir / "taxonomy")
    files = [str(root / c.path) for c in diff.leaves if c.status != "deleted"]
    load_checks()
    report = check_files(files, root, load_config(root))
    findings = findings_as_dicts(report.findings)
    for f in findings:  # back to repository-relative paths for the comment's links
        f["file"] = os.path.relpath(f["file"], root) if os.path.isabs(f["file"]) else f["file"]
    run.data["validation"] = {"errors": report.errors, "warnings": len(findings) - report.errors}
    errors = [f for f in findings if f.get("severity") == "error"]
    if errors or report.internal_errors:
        raise StageFailed(f"{len(errors)} error(s) in the changed leaves; fix them and push again"
                          + (f" ({len(report.internal_errors)} internal error(s))" if report.internal_errors else ""),
                          errors)
    leaves = []
    for change in diff.leaves:
        if change.status != "deleted":
            leaves.append(diff.read_leaf(change))
    return root, leaves


def _generate(run: _Run, leaves, root: Path, store, out: Path):
    from lab_hooks.sdg import generate_leaves

    opts = run.opts
    result = generate_leaves(leaves, opts.teacher, store, out_dir=out / "sdg", samples_per_seed=opts.samples_per_seed,
                             seed=opts.seed, taxonomy_root=root, progress=opts.progress)
    rows = []
    for r in result.leaves:
        steps = r.stats.get("steps", {})
        dropped = {name: st["candidates"] - st["passed"] for name, st in steps.items()
                   if st.get("candidates", 0) > st.get("passed", 0)}
        rows.append({"leaf": r.leaf, "candidates": r.candidates, "accepted": r.accepted, "dropped": dropped,
                     "status": "ok" if r.ok else (r.message or r.status), "artifact": r.artifact})
    run.data["generation"] = {"teacher": opts.teacher, "leaves": rows, "teacher_calls": result.calls}
    if not any(r.ok for r in result.leaves):
        raise StageFailed("no changed leaf produced any accepted sample: "
                          + "; ".join(f"{r.leaf}: {r.message or r.status}" for r in result.leaves))
    return ("cached", result) if result.calls == 0 else result
