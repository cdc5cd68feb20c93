"""The evaluate stage: MT-Bench and the branch eval, base vs candidate (lab_hooks.eval)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab_hooks.taxonomy.leaf import Leaf


@dataclass(frozen=True)
class EvaluateJob:
    store: Any
    base: str  # model spec of main's model
    candidate: str  # model spec of the PR's candidate
    judge: str
    changed: tuple[Leaf, ...]  # the PR's leaves with a head side
    new: frozenset[str]  # names of the leaves it adds
    unchanged: tuple[Leaf, ...]  # the pool of regression controls
    settings: dict = field(default_factory=dict)  # lab_hooks.eval Settings fields
    ids: dict[str, str] = field(default_factory=dict)  # role -> store key of a checkpoint (not hashed again)


@dataclass(frozen=True)
class Evaluated:
    results: dict  # lab_hooks.eval's results JSON
    cached: bool = False

    def fields(self) -> dict:
        return {"eval_results": self.results, **eval_summary(self.results)}

    def problem(self) -> None:
        return None


def evaluate(job: EvaluateJob) -> Evaluated:
    """lab_hooks.eval: answers of both models, judged; deltas with CIs."""
    from lab_hooks.eval import Settings
    from lab_hooks.eval import evaluate as run_eval

    results = run_eval(base=job.base, candidate=job.candidate, judge=job.judge, changed_leaves=list(job.changed),
                       store=job.store, new_leaves=job.new, unchanged_leaves=list(job.unchanged),
                       settings=Settings(**job.settings), ids=dict(job.ids))
    steps = [row for row in results["timings"]["steps"] if "cached" in row]
    return Evaluated(results, cached=bool(steps) and all(row["cached"] for row in steps))


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
