"""The PR loop: plan (diff) → validate → generate → train → evaluate; the report is written by the caller.

    run = run_pr(PrOptions(repo=".", base="origin/main", head=sha, pr=12))
    run["status"], run["failure"], run["stages"]      # the plain dict the comment renders

The rules come from the base side's config, not the PR's. Every stage is timed;
the first that fails stops the run and the report still says which stage and why.
Main's state comes from the store (lab_hooks.train.replay): ref `main/checkpoint`
(the student when unset) and `main/replay` (a record {"leaves": {leaf: SDG artifact key}}).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lab_hooks.loop.candidate import remember_run
from lab_hooks.loop.evaluate import evaluate
from lab_hooks.loop.generate import generate
from lab_hooks.loop.plan import plan
from lab_hooks.loop.run import PrOptions, Run, Stop, say
from lab_hooks.loop.train import train
from lab_hooks.loop.validate import validate


def run_pr(opts: PrOptions, store=None) -> dict:
    """Run the loop; returns the results dict (status ok or failed, never raises for a stage)."""
    from lab_hooks.store import Store

    if opts.lab_home:
        os.environ["LAB_HOME"] = opts.lab_home
    run = Run(opts)
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lab-hooks-pr-"))
    store = store if store is not None else Store()
    try:
        with store.run("pr", {"pr": opts.pr, "base": opts.base, "head": opts.head}):  # no gc meanwhile
            _stages(run, store, out, workdir)
    except Stop:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        run.close()
    return run.data


def _stages(run: Run, store, out: Path, workdir: Path) -> None:
    total = 6
    diff = run.stage("diff", 1, total, plan, run)
    if not diff.leaves:
        return say("no taxonomy leaf changed: nothing to train", run.opts.progress)
    root, leaves = run.stage("validate", 2, total, validate, run, diff, workdir)
    if not leaves:
        return say("the PR only deletes leaves: promotion drops them from the replay buffer", run.opts.progress)
    gen = run.stage("generate", 3, total, generate, run, leaves, root, store, out)
    trained = run.stage("train", 4, total, train, run, gen, store)
    run.stage("evaluate", 5, total, evaluate, run, trained, leaves, root, store)
    remember_run(store, diff, run.data, trained)
