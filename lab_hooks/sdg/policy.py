"""Whether the teacher's judge steps filter samples, and what a leaf's report shows of them.

A judge's scores count only once the judge is known to tell good from bad
(the brief: the embedded 135M model is too small to judge). Until then its
verdicts are still asked for, recorded in every sample's trace and counted per
step (`would_drop`), but they drop nothing: the generation parsers and dedup
still filter, and stats.json and the PR comment say that judge filtering was
not applied and why. Modes: "auto" (apply unless the teacher is a judge known
not to discriminate), "apply" (always), "record" (never).

`untrusted_judge` is the one place that decides which judges are not trusted;
a calibration gate replaces its body.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

JUDGE_MODES = ("auto", "apply", "record")
EXAMPLE_FIELDS = ("context", "question", "answer")
EXCERPT = 400  # characters of each field kept in a report


@dataclass(frozen=True)
class JudgePolicy:
    applied: bool
    reason: str  # why not applied (empty when applied by default)

    def as_dict(self) -> dict:
        return {"applied": self.applied, "reason": self.reason}


def untrusted_judge(spec: str) -> str | None:
    """Why this teacher's judge scores may not filter anything, or None when they may."""
    from lab_hooks.models.embedded import is_smoke_test_judge

    if is_smoke_test_judge(spec):
        return (f"the teacher {spec} is too small to judge (its scores have passed no calibration): "
                "judge verdicts are recorded, not applied")
    return None


def judge_policy(teacher_spec: str, mode: str = "auto") -> JudgePolicy:
    if mode not in JUDGE_MODES:
        raise ValueError(f"judge mode {mode!r}: expected one of {', '.join(JUDGE_MODES)}")
    if mode == "apply":
        return JudgePolicy(True, "")
    if mode == "record":
        return JudgePolicy(False, "judge filtering turned off (judges: record): verdicts are recorded, not applied")
    reason = untrusted_judge(teacher_spec)
    return JudgePolicy(reason is None, reason or "")


def keep_rule(keep: dict) -> str:
    """A judge step's `keep` as a reader writes it: '= 1', '>= 2'."""
    return f"= {keep['equals']}" if "equals" in keep else f">= {keep.get('min', 1)}"


def sample_examples(records: Path | None, k: int = 3) -> dict:
    """A few accepted and a few dropped samples of a leaf (records.jsonl), each dropped one with
    the step that dropped it and why; dropped ones from as many different steps as there are."""
    import json

    if records is None or not records.is_file():
        return {"accepted": [], "dropped": []}
    rows = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines() if line.strip()]
    accepted = [_fields(r) for r in rows if r["status"] == "accepted"][:k]
    dropped = [r for r in rows if r["status"] == "dropped"]
    picked, steps = [], []
    for r in dropped:  # first one per dropping step, then the rest in order
        if r["dropped_by"] not in steps:
            steps.append(r["dropped_by"])
            picked.append(r)
    picked += [r for r in dropped if r not in picked]
    return {"accepted": accepted,
            "dropped": [{**_fields(r), "dropped_by": r["dropped_by"], "reason": _why(r)} for r in picked[:k]]}


def _fields(record: dict) -> dict:
    fields = record.get("fields") or {}
    return {name: _excerpt(fields[name]) for name in EXAMPLE_FIELDS if fields.get(name)}


def _why(record: dict) -> str:
    entry = next((t for t in reversed(record.get("trace") or []) if t.get("step") == record["dropped_by"]), {})
    if entry.get("verdict") == "unparseable":
        return f"the teacher's output could not be parsed: {_excerpt(entry.get('raw', ''), 120)!r}"
    reason = entry.get("reason") or str(entry.get("verdict") or "dropped")
    return f"{reason} of {_excerpt(entry['of'], 120)!r}" if entry.get("of") else reason


def _excerpt(text: str, limit: int = EXCERPT) -> str:
    text = str(text).strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "…"
