"""The evaluate stage: MT-Bench and the branch eval, base vs candidate (lab_hooks.eval)."""

from __future__ import annotations

from pathlib import Path

from lab_hooks.loop.plan import leaf_names


def evaluate(run, trained, leaves, root: Path, store):
    from lab_hooks.checks.engine import expand
    from lab_hooks.eval import Settings, evaluate
    from lab_hooks.taxonomy.load import LeafError, load_leaf_file

    base_spec, candidate_spec, candidate_key, _ = trained
    opts = run.opts
    changed_names = {leaf.name for leaf in leaves}
    unchanged = []
    for file in expand([str(root)]):
        try:
            leaf = load_leaf_file(file)
        except LeafError:
            continue  # an unchanged leaf main already holds; the validator is not asked about it here
        if leaf.name not in changed_names:
            unchanged.append(leaf)
    settings = Settings(**{"seed": opts.seed, "quick": opts.quick, **opts.eval})
    # Checkpoints the store holds are known by their keys: no need to hash their files again.
    ids = {"candidate": candidate_key}
    if run.data["models"]["base_checkpoint"] != opts.student:  # main's checkpoint, not the untrained student
        ids["base"] = run.data["models"]["base_checkpoint"]
    results = evaluate(base=base_spec, candidate=candidate_spec, judge=opts.judge, changed_leaves=leaves,
                       store=store, new_leaves=leaf_names(run.data["changed_leaves"], ("added",)),
                       unchanged_leaves=unchanged, settings=settings, ids=ids)
    run.data["eval_results"] = results
    run.data.update(eval_summary(results))
    steps = [row for row in results["timings"]["steps"] if "cached" in row]
    return ("cached", results) if steps and all(row["cached"] for row in steps) else results


def judge_error_rate(errors: dict) -> float | None:
    """Unparseable judgments over all judgments, both models together (None: none made)."""
    judged = sum(e.get("judgments", 0) for e in errors.values())
    return sum(e.get("errors", 0) for e in errors.values()) / judged if judged else None


JUDGE_FIELDS = ("spec", "smoke_test", "prefill", "scoring", "scoring_counts", "calibration")


def eval_summary(results: dict) -> dict:
    """What the comment shows of lab_hooks.eval's results JSON: the reference NLL per leaf
    (`leaves`, the maintainer's first lines), the judge and its calibration, MT-Bench,
    the judged branch eval and the pairwise comparison."""
    judge = results.get("judge") or {}
    out = {"leaves": results.get("leaves") or [], "leaves_skipped": results.get("leaves_skipped") or [],
           "reference_nll": (results.get("statistics") or {}).get("reference_nll"),
           "judge": {k: judge.get(k) for k in JUDGE_FIELDS}}
    mt = results.get("mtbench")
    if mt:
        out["mtbench"] = {"overall": mt["overall"], "categories": mt.get("categories", {}),
                          "quick": (mt.get("subset") or {}).get("quick"),
                          "judge_error_rate": judge_error_rate(mt.get("errors", {})),
                          "smoke_judge": judge.get("smoke_test", False), "judge_prefill": judge.get("prefill")}
    branch = results.get("branch")
    if branch:
        out["branch"] = {"leaves": branch.get("leaves", []), "judge_error_rate": judge_error_rate(branch.get("errors", {}))}
    pairs = results.get("pairwise")
    if pairs:
        out["pairwise"] = {k: v for k, v in pairs.items() if k != "games"}
    return out
