"""Planted effects: does the reference-NLL verdict see a real change, and stay quiet on a null one?

    .venv/bin/python bench/planted.py good --seeds 0 1 2 --work DIR
    .venv/bin/python bench/planted.py harmful --seeds 0 1 --work DIR
    .venv/bin/python bench/planted.py null --seeds 1 2 3 4 5 --work DIR   # candidate(seed s) vs candidate(seed 0)
    .venv/bin/python bench/planted.py report --work DIR                    # the table, from DIR/planted.jsonl

Everything runs on the embedded model through the PR loop with the demo's settings
(lab_hooks.demo) and in the demo's store (LAB_HOME/demo-store): main is promoted from
the sample taxonomy once (after `make demo`, not at all),
then each case runs PRs against it. Split long runs (each seed is a few minutes on 2 cores).

- good: the demo PR (the limericks leaf, whose rhyme labels the base model does not
  know), seed s → the leaf must be *improved*, no control *regressed*.
- harmful: a PR adding a leaf that asks shell_one_liners' questions in other words and
  answers them wrongly (a GUI click-path instead of a command) → the control
  shell_one_liners must be *regressed*. Every unchanged leaf is a control here.
- null: the demo PR trained with seed 0 and with seed s: the same treatment, only the
  seed (generation, replay draw, training order, bootstrap) differs. Base = candidate(0),
  candidate = candidate(s): every verdict other than *within noise* is a false positive.

The anchor: InstructLab's branch benchmark has no judge-free metric and no control
leaves; its verdict on the same PRs would come from the embedded judge, which fails
calibration (every MT-Bench figure of the old demo was 5.00 → 5.00). We print the raw
delta's verdict beside ours from the same run: the rule without controls.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL = "compositional_skills/coding/freeform/shell_one_liners"
LIMERICKS = "compositional_skills/writing/freeform/limericks"
HARMFUL = "compositional_skills/coding/freeform/shell_by_clicking"
HARMFUL_SEEDS = [
    "What's the way to count the lines in every Python file below this folder?",
    "How can I list the files over 100 MB in my home folder?",
    "How do I swap http:// for https:// in all the .html files here and keep a backup?",
    "How do I see which ten folders in here take up the most space?",
    "Which program is using port 8080 right now?",
    "How can I count how many words are in a text file?",
    "How do I find which files changed in the last day?",
]


def harmful_leaf() -> str:
    answer = ("Open the Settings app, click the blue Files button, then choose Tools and press OK. "
              "Wait for the green light, and the computer does it for you.")
    seeds = "".join(f"  - question: {q}\n    answer: {answer} Step {i + 1} of the wizard.\n"
                    for i, q in enumerate(HARMFUL_SEEDS))
    return ("version: 3\ncreated_by: lab-hooks-bench\ntask_description: Answer shell questions.\n"
            "seed_examples:\n" + seeds)


def setup(work: Path):
    """The demo repository plus a branch adding the harmful leaf; main promoted (cached)."""
    sys.path.insert(0, str(ROOT))
    from lab_hooks import demo
    from lab_hooks.loop.promote import promote
    from lab_hooks.store import Store

    repo = work / "repo"
    if not repo.exists():
        demo.build_repo(demo.TAXONOMY, repo)
        demo.git(repo, "checkout", "-qb", "pr/harmful", "main")
        leaf = repo / HARMFUL
        leaf.mkdir(parents=True)
        (leaf / "qna.yaml").write_text(harmful_leaf())
        shutil.copy(repo / SHELL / "attribution.txt", leaf / "attribution.txt")
        demo.git(repo, "add", "-A")
        demo.git(repo, "commit", "-qm", "Add shell answers")
        demo.git(repo, "checkout", "-q", "main")
    store = Store(url=demo.store_url())
    promote(str(repo), "main", store=store, options=demo.promote_options())
    return repo, store


def pr_run(repo: Path, store, head: str, seed: int, out: Path, **eval_settings) -> dict:
    from lab_hooks import demo
    from lab_hooks.loop.pr import run_pr

    opts = demo.pr_options(repo=str(repo), base="main", head=head, seed=seed, out_dir=str(out), progress=False)
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


def run_case(case: str, seeds: list[int], work: Path) -> list[dict]:
    from lab_hooks import demo
    from lab_hooks.eval import Settings, evaluate
    from lab_hooks.eval.leaves import load_tree
    from lab_hooks.models.embedded import DEFAULT_EMBEDDED

    repo, store = setup(work)
    out = []
    for seed in seeds:
        start = time.perf_counter()
        if case in ("good", "harmful"):
            head = "pr/limericks" if case == "good" else "pr/harmful"
            extra = {"unchanged_sample": 100} if case == "harmful" else {}
            run = pr_run(repo, store, head, seed, work / "out" / f"{case}-{seed}", **extra)
            if run["status"] != "ok":
                raise SystemExit(f"{case} seed {seed}: {run.get('failure')}")
            leaves = run["leaves"]
        else:
            runs = [pr_run(repo, store, "pr/limericks", s, work / "out" / f"null-{s}") for s in (0, seed)]
            failed = [r.get("failure") for r in runs if r["status"] != "ok"]
            if failed:
                raise SystemExit(f"null seed {seed}: {failed}")
            base, candidate = (f"hf:{store.get(r['models']['candidate_checkpoint'])}" for r in runs)
            tree = work / "tree"
            if not tree.exists():
                demo.git(repo, "worktree", "add", "-q", str(tree), "pr/limericks")
            everything = load_tree(tree)
            changed = [leaf for leaf in everything if leaf.name == LIMERICKS]
            results = evaluate(base, candidate, f"embedded:{DEFAULT_EMBEDDED}", changed, store,
                               unchanged_leaves=[leaf for leaf in everything if leaf.name != LIMERICKS],
                               settings=Settings(**{**demo.pr_options().eval, "seed": seed, "mtbench": False,
                                                    "branch_judge": False}),
                               ids={"base": runs[0]["models"]["candidate_checkpoint"],
                                    "candidate": runs[1]["models"]["candidate_checkpoint"]})
            leaves = results["leaves"]
        rows = rows_of(case, seed, leaves, time.perf_counter() - start)
        with open(work / "planted.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        for r in rows:
            print(f"{case} seed {seed}: {r['leaf']} ({'changed' if r['changed'] else 'control'}) "
                  f"Δ {r['delta']:+.3f}, beyond controls {r['beyond']:+.3f} {r['ci']} → {r['verdict']} "
                  f"(raw-delta rule: {r['raw_verdict']})", flush=True)
        out += rows
    return out


def report(work: Path) -> None:
    rows = [json.loads(line) for line in (work / "planted.jsonl").read_text().splitlines() if line.strip()]
    latest = {(r["case"], r["seed"], r["leaf"]): r for r in rows}  # a rerun of a seed replaces it
    rows = list(latest.values())
    print("| case | runs | what must happen | ours: as expected | raw-delta rule: as expected |")
    print("|---|---|---|---|---|")

    def line(case, what, pick, expected):
        chosen = [r for r in rows if r["case"] == case and pick(r)]
        runs = len({r["seed"] for r in chosen})
        ours = sum(expected(r["verdict"]) for r in chosen)
        raw = sum(expected(r["raw_verdict"]) for r in chosen)
        print(f"| {case} | {runs} | {what} | {ours}/{len(chosen)} | {raw}/{len(chosen)} |")

    line("good", "the PR's leaf improved", lambda r: r["changed"], lambda v: v == "improved")
    line("good", "no control regressed", lambda r: not r["changed"], lambda v: v != "regressed")
    line("harmful", "shell_one_liners regressed", lambda r: r["leaf"] == SHELL, lambda v: v == "regressed")
    line("null", "every leaf within noise", lambda r: True, lambda v: v == "within noise")
    null = [r for r in rows if r["case"] == "null"]
    if null:
        runs = {r["seed"] for r in null}
        any_false = {r["seed"] for r in null if r["verdict"] not in ("within noise", "insufficient data")}
        raw_false = {r["seed"] for r in null if r["raw_verdict"] not in ("within noise", "insufficient data")}
        print(f"\nnull runs with any false verdict: ours {len(any_false)}/{len(runs)}, "
              f"raw-delta rule {len(raw_false)}/{len(runs)}; false verdicts per leaf: ours "
              f"{sum(r['verdict'] not in ('within noise', 'insufficient data') for r in null)}/{len(null)}, raw "
              f"{sum(r['raw_verdict'] not in ('within noise', 'insufficient data') for r in null)}/{len(null)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", choices=("good", "harmful", "null", "report"))
    p.add_argument("--seeds", type=int, nargs="*", default=[0])
    p.add_argument("--work", type=Path, required=True, help="kept between runs: the repo and the rows")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.case == "report":
        report(args.work)
        return 0
    if args.case == "null" and 0 in args.seeds:
        p.error("null compares seed s with seed 0: give seeds other than 0")
    run_case(args.case, args.seeds, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
