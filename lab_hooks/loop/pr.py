"""The PR loop: plan (diff) → validate → generate → train → evaluate; the report is written by the caller.

    run = run_pr(PrOptions(repo=".", base="origin/main", head=sha, pr=12))
    run["status"], run["failure"], run["stages"]      # the plain dict the comment renders

The rules come from the base side's config, not the PR's. Every stage is timed;
the first that fails stops the run and the report still says which stage and why.
Main's state is read from the store once, before training (lab_hooks.train.replay:
`main/checkpoint`, the student when unset, and `main/replay`); the candidate records
that checkpoint as its parent, so a promotion meanwhile cannot make it look current.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lab_hooks.loop.candidate import next_buffer, remember_candidate
from lab_hooks.loop.evaluate import EvaluateJob
from lab_hooks.loop.generate import GenerateJob
from lab_hooks.loop.plan import plan
from lab_hooks.loop.run import PrOptions, Run, Stop, say
from lab_hooks.loop.stages import Stages
from lab_hooks.loop.train import TrainJob, served_spec
from lab_hooks.loop.validate import validate
from lab_hooks.train.replay import read_main

STAGES = ("diff", "validate", "generate", "train", "evaluate", "report")


def run_pr(opts: PrOptions, store=None, stages: Stages = Stages()) -> dict:
    """Run the loop; returns the results dict (status ok or failed, never raises for a stage)."""
    from lab_hooks.store import Store

    if opts.lab_home:
        os.environ["LAB_HOME"] = opts.lab_home
    run = Run(opts, STAGES)
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lab-hooks-pr-"))
    store = store if store is not None else Store()
    try:
        with store.run("pr", {"pr": opts.pr, "base": opts.base, "head": opts.head}):  # no gc meanwhile
            _stages(run, stages, store, out, workdir)
    except Stop:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        run.close()
    return run.data


def _stages(run: Run, stages: Stages, store, out: Path, workdir: Path) -> None:
    opts = run.opts
    changes = run.stage("diff", plan, opts.repo, opts.base, opts.head).changes
    if not changes.leaves:
        return say("no taxonomy leaf changed: nothing to train", opts.progress)
    checked = run.stage("validate", validate, changes, workdir)
    if not checked.leaves:
        return say("the PR only deletes leaves: promotion drops them from the replay buffer", opts.progress)
    main = read_main(store)
    generated = run.stage("generate", stages.generate, GenerateJob(
        checked.leaves, opts.teacher, store, out / "sdg", checked.root, opts.samples_per_seed, opts.seed,
        opts.sdg_max_tokens, opts.progress, judges=opts.sdg_judges))
    trained = run.stage("train", stages.train, TrainJob(
        store, main, opts.student, {r.leaf: r.dataset for r in generated.leaves if r.ok}, changes.retired,
        opts.train_config(), opts.replay_ratio))
    base = served_spec(opts.student, store.get(main.checkpoint)) if main.checkpoint else opts.student
    ids = {"candidate": trained.checkpoint, **({"base": main.checkpoint} if main.checkpoint else {})}
    run.stage("evaluate", stages.evaluate, EvaluateJob(
        store, base, served_spec(opts.student, trained.path), opts.judge, checked.leaves, changes.added,
        unchanged_leaves(checked.root, checked.leaves), {"seed": opts.seed, "quick": opts.quick, **opts.eval}, ids))
    remember_candidate(store, changes.repo, changes.head, trained.checkpoint, trained.parent,
                       next_buffer(main.buffer, changes, generated.datasets()), opts.pr)


def unchanged_leaves(root: Path, changed) -> tuple:
    """Every readable leaf of the head tree the PR does not change: the regression controls' pool."""
    from lab_hooks.checks.engine import expand
    from lab_hooks.taxonomy.load import LeafError, load_leaf_file

    names, out = {leaf.name for leaf in changed}, []
    for file in expand([str(root)]):
        try:
            leaf = load_leaf_file(file)
        except LeafError:
            continue  # an unchanged leaf main already holds; the validator is not asked about it here
        if leaf.name not in names:
            out.append(leaf)
    return tuple(out)
