"""Planted effects: does the reference-NLL verdict see a real change, and stay quiet on a null one?

    .venv/bin/python bench/planted.py good --seeds 0 1 2 --work DIR
    .venv/bin/python bench/planted.py harmful --seeds 0 1 --work DIR
    .venv/bin/python bench/planted.py null --seeds 0 1 2 3 --work DIR   # every pair i-j: candidate(j) vs candidate(i)
    .venv/bin/python bench/planted.py report --work DIR                  # the table, from DIR/planted.jsonl
    .venv/bin/python bench/planted.py report --work DIR --calibrate 0 1 2 3   # the minimum effect from those
                                                         # seeds' nulls, the false-positive rate on the others'

Everything runs on the embedded model through the PR loop with the demo's settings
(lab_hooks.demo) and in the demo's store (LAB_HOME/demo-store): main is promoted from
the sample taxonomy once (after `make demo`, not at all),
then each case runs PRs against it. Split long runs (each seed is a few minutes on 2 cores);
a seed already trained is served from the store, so a later run may repeat earlier seeds.

- good: the demo PR (the limericks leaf, whose rhyme labels the base model does not
  know), seed s → the leaf must be *improved*, no control *regressed*.
- harmful: the same PR trained at five times the demo's learning rate: the model then
  writes the limericks' "A:"/"B:" rhyme labels into its haiku too (greedy answers show
  it), so the control haiku must be *regressed*. Every unchanged leaf is a control here.
  (A leaf answering shell_one_liners' questions wrongly harmed nothing measurable at the
  demo's learning rate: the 135M teacher's synthetic answers did not keep the wrong ones.)
- null: the demo PR trained under each seed given (each such run is a good run too),
  then every pair compared: base = candidate(i), candidate = candidate(j), the same
  treatment with only the seed (generation, replay draw, training order) differing, so
  every verdict other than *within noise* is a false positive. Every unchanged leaf is
  a control. Pairs sharing a seed are not independent: `--calibrate` takes the
  minimum effect from the pairs among some seeds and counts false positives only on
  pairs among the others.

The anchor: InstructLab's branch benchmark has no judge-free metric and no control
leaves; its verdict on the same PRs would come from the embedded judge, which fails
calibration (every MT-Bench figure of the old demo was 5.00 → 5.00). We print the raw
delta's verdict beside ours from the same run: the rule without controls.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMERICKS = "compositional_skills/writing/freeform/limericks"
HAIKU = "compositional_skills/writing/freeform/haiku"
HARMFUL_LEARNING_RATE = 1e-4  # five times the demo PR's: the model then labels its haiku's lines too


def setup(work: Path):
    """The demo repository; main promoted (cached)."""
    sys.path.insert(0, str(ROOT))
    from lab_hooks import demo
    from lab_hooks.loop.promote import promote
    from lab_hooks.store import Store

    repo = work / "repo"
    if not repo.exists():
        demo.build_repo(demo.TAXONOMY, repo)
    store = Store(url=demo.store_url())
    promote(str(repo), "main", store=store, options=demo.promote_options())
    return repo, store


def pr_run(repo: Path, store, seed: int, out: Path, learning_rate: float | None = None, **eval_settings) -> dict:
    """The demo's PR under `seed` (and `learning_rate`, else the demo's), MT-Bench left out."""
    from dataclasses import replace

    from lab_hooks import demo
    from lab_hooks.loop.pr import run_pr

    opts = demo.pr_options(repo=str(repo), base="main", seed=seed, out_dir=str(out), progress=False)
    if learning_rate is not None:
        opts = replace(opts, train=replace(opts.train, learning_rate=learning_rate))
    opts.eval.update(mtbench=False, branch_judge=False, **eval_settings)
    return run_pr(opts, store)


def raw_verdict(row: dict) -> str:
    """The verdict without controls and without a minimum effect: the raw delta's CI against 0."""
    from lab_hooks.eval.stats import verdict

    r = row["reference_nll"]
    sign = None if r["ci"] is None else [-r["ci"][1], -r["ci"][0]]  # lower NLL is better
    return verdict(sign, r["n_answers"])


def rows_of(case: str, seed: int, leaves: list[dict], seconds: float) -> list[dict]:
    return [{"case": case, "seed": seed, "leaf": row["path"], "changed": row["changed"],
             "delta": row["reference_nll"]["delta"], "beyond": row["reference_nll"]["beyond_controls"]["delta"],
             "ci": row["reference_nll"]["beyond_controls"]["ci"], "verdict": row["reference_nll"]["verdict"],
             "raw_verdict": raw_verdict(row), "n": row["reference_nll"]["n_answers"],
             "held_out": row["reference_nll"]["held_out"], "seconds": round(seconds, 1)} for row in leaves]


def null_pair(repo: Path, store, work: Path, runs: dict, first: int, second: int) -> list[dict]:
    """candidate(first) as base, candidate(second) as candidate: the same PR, only the seed differs."""
    from lab_hooks import demo
    from lab_hooks.eval import Settings, evaluate
    from lab_hooks.eval.leaves import load_tree
    from lab_hooks.models.embedded import DEFAULT_EMBEDDED

    base, candidate = (f"hf:{store.get(runs[s]['models']['candidate_checkpoint'])}" for s in (first, second))
    tree = work / "tree"
    if not tree.exists():
        demo.git(repo, "worktree", "add", "-q", str(tree), "pr/limericks")
    everything = load_tree(tree)
    changed = [leaf for leaf in everything if leaf.name == LIMERICKS]
    results = evaluate(base, candidate, f"embedded:{DEFAULT_EMBEDDED}", changed, store,
                       unchanged_leaves=[leaf for leaf in everything if leaf.name != LIMERICKS],
                       settings=Settings(**{**demo.pr_options().eval, "seed": second, "mtbench": False,
                                            "branch_judge": False}),
                       ids={"base": runs[first]["models"]["candidate_checkpoint"],
                            "candidate": runs[second]["models"]["candidate_checkpoint"]})
    return results["leaves"]


def record(work: Path, case: str, seed, leaves: list[dict], seconds: float) -> list[dict]:
    rows = rows_of(case, seed, leaves, seconds)
    with open(work / "planted.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    for r in rows:
        print(f"{case} seed {seed}: {r['leaf']} ({'changed' if r['changed'] else 'control'}) "
              f"Δ {r['delta']:+.3f}, beyond controls {r['beyond']:+.3f} {r['ci']} → {r['verdict']} "
              f"(raw-delta rule: {r['raw_verdict']})", flush=True)
    return rows


def run_case(case: str, seeds: list[int], work: Path) -> list[dict]:
    """good / harmful: one PR run per seed. null: the PR trained under each seed, then every
    pair of them compared (pair "i-j": candidate(i) as base, candidate(j) as candidate)."""
    repo, store = setup(work)
    out, runs = [], {}
    for seed in seeds:
        start = time.perf_counter()
        extra = {"unchanged_sample": 100, "learning_rate": HARMFUL_LEARNING_RATE} if case == "harmful" else {}
        run = pr_run(repo, store, seed, work / "out" / f"{'good' if case == 'null' else case}-{seed}", **extra)
        if run["status"] != "ok":
            raise SystemExit(f"{case} seed {seed}: {run.get('failure')}")
        # a null seed's own run is the demo PR under that seed: a good run as well
        out += record(work, "good" if case == "null" else case, seed, run["leaves"], time.perf_counter() - start)
        if case != "null":
            continue
        start = time.perf_counter()
        for first in runs:  # every pair as soon as both are trained: a run cut short keeps its pairs
            out += record(work, case, f"{first}-{seed}", null_pair(repo, store, work, {**runs, seed: run}, first, seed),
                          time.perf_counter() - start)
            start = time.perf_counter()
        runs[seed] = run
    return out


def pair_of(row: dict) -> set[int]:
    return {int(s) for s in str(row["seed"]).split("-")}


def report(work: Path, calibrate: list[int], min_effect: float | None, controls_effect: float | None,
           one_threshold: bool = False) -> None:
    """The table, with our verdicts redrawn at a minimum effect for changed leaves and one for
    controls (default: the code's). With `calibrate`: each is the largest |excess| a leaf of that
    role (the PR's leaf, or a control) showed in the null pairs among those seeds (with
    `one_threshold`, the larger of the two for both), and false positives are counted only on
    the null pairs among the other seeds."""
    from lab_hooks.eval.reference import MIN_EFFECT, MIN_EFFECT_CONTROLS
    from lab_hooks.eval.stats import INSUFFICIENT, WITHIN_NOISE, effect_verdict

    rows = [json.loads(line) for line in (work / "planted.jsonl").read_text().splitlines() if line.strip()]
    latest = {(r["case"], str(r["seed"]), r["leaf"]): r for r in rows}  # a rerun of a seed replaces it
    rows = [r for r in latest.values() if r["case"] != "null" or "-" in str(r["seed"])]  # pairs only
    null = [r for r in rows if r["case"] == "null"]
    if calibrate:
        fit = [r for r in null if pair_of(r) <= set(calibrate)]
        if not fit:
            raise SystemExit(f"no null pairs among seeds {calibrate} in {work / 'planted.jsonl'}")

        def largest(changed: bool) -> float:
            return math.ceil(max(abs(r["beyond"]) for r in fit if r["changed"] == changed) * 100) / 100

        min_effect, controls_effect = largest(True), largest(False)
        if one_threshold:
            min_effect = controls_effect = max(min_effect, controls_effect)
        print(f"calibrated on {len({r['seed'] for r in fit})} null pairs among seeds {calibrate} ({len(fit)} leaf "
              f"rows): the largest |excess| of the PR's leaf {largest(True):.2f}, of a control {largest(False):.2f}\n")
        rows = [r for r in rows if r["case"] != "null" or not pair_of(r) & set(calibrate)]
        null = [r for r in rows if r["case"] == "null"]
    if controls_effect is None:
        controls_effect = MIN_EFFECT_CONTROLS if min_effect is None else min_effect
    min_effect = MIN_EFFECT if min_effect is None else min_effect
    for r in rows:
        r["verdict"] = effect_verdict(r["beyond"], r["ci"], r["n"], min_effect if r["changed"] else controls_effect,
                                      lower_is_better=True)
    print(f"ours: the excess beyond the controls' Δ with a CI excluding 0 and at least {min_effect:.2f} nats/token "
          f"(the PR's leaves), {controls_effect:.2f} (controls)")
    print("| case | runs | what must happen | ours: as expected | raw-delta rule: as expected |")
    print("|---|---|---|---|---|")

    def line(case, what, pick, expected):
        chosen = [r for r in rows if r["case"] == case and pick(r)]
        runs = len({str(r["seed"]) for r in chosen})
        ours = sum(expected(r["verdict"]) for r in chosen)
        raw = sum(expected(r["raw_verdict"]) for r in chosen)
        print(f"| {case} | {runs} | {what} | {ours}/{len(chosen)} | {raw}/{len(chosen)} |")

    line("good", "the PR's leaf improved", lambda r: r["changed"], lambda v: v == "improved")
    line("good", "no control regressed", lambda r: not r["changed"], lambda v: v != "regressed")
    line("harmful", "haiku regressed", lambda r: r["leaf"] == HAIKU, lambda v: v == "regressed")
    line("null", "every leaf within noise", lambda r: True, lambda v: v == WITHIN_NOISE)
    for r in rows:
        if r["case"] != "null" and (r["changed"] or r["leaf"] == HAIKU or r["verdict"] == "regressed"):
            print(f"  {r['case']} seed {r['seed']}: {r['leaf'].rsplit('/', 1)[1]} beyond controls {r['beyond']:+.3f} "
                  f"{r['ci']} → {r['verdict']} (raw: {r['raw_verdict']})")
    if null:
        quiet = (WITHIN_NOISE, INSUFFICIENT)
        runs = {str(r["seed"]) for r in null}
        spread = sorted(abs(r["beyond"]) for r in null)
        ours = [r for r in null if r["verdict"] not in quiet]
        raw = [r for r in null if r["raw_verdict"] not in quiet]
        print(f"\nnull pairs: {len(runs)}; |excess| over their {len(null)} leaf rows: "
              f"median {spread[len(spread) // 2]:.3f}, max {spread[-1]:.3f}")
        print(f"null pairs with any false verdict: ours {len({str(r['seed']) for r in ours})}/{len(runs)}, "
              f"raw-delta rule {len({str(r['seed']) for r in raw})}/{len(runs)}; "
              f"false verdicts per leaf: ours {len(ours)}/{len(null)}, raw {len(raw)}/{len(null)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", choices=("good", "harmful", "null", "report"))
    p.add_argument("--seeds", type=int, nargs="*", default=[0])
    p.add_argument("--work", type=Path, required=True, help="kept between runs: the repo and the rows")
    p.add_argument("--calibrate", type=int, nargs="*", default=[], metavar="SEED",
                   help="report: the minimum effect from the null pairs among these seeds, the FPR on the others")
    p.add_argument("--min-effect", type=float, help="report: redraw our verdicts at this minimum effect")
    p.add_argument("--min-effect-controls", type=float, help="report: ... and this one for controls")
    p.add_argument("--one-threshold", action="store_true", help="report --calibrate: one minimum effect for both roles")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.case == "report":
        report(args.work, args.calibrate, args.min_effect, args.min_effect_controls, args.one_threshold)
        return 0
    run_case(args.case, args.seeds, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
