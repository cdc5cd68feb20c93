"""The judge calibration gate: can this judge tell a good answer from a broken one?

Before a judge's scores are used, it rates a fixed set: MT-Bench's GPT-4 reference
answers (math, reasoning and coding questions, first turn) and, for the same
questions, four deliberately degraded answers — the reference truncated to its first
third, another question's reference (off-topic), the reference's words shuffled, and
the reference with its last number changed (a wrong final answer). Every answer is
rated with FastChat's `single-v1` prompt, which shows no reference: the judge has to
know a good answer when it sees one, as it must for the MT-Bench answers it grades.

Discrimination: the gap between the mean rating of the references and of their
degraded versions (per question, then averaged), a bootstrap CI over questions, and
the AUC (the chance that a reference outrates a degraded answer to the same
question). The judge passes when the gap's CI excludes 0 and the gap is at least
`MIN_GAP` rating points. A judge that fails still has its MT-Bench scores shown, but
labelled as not measuring quality, and no verdict is drawn from them. Ratings are
cached per judge (its id, prompts, judging settings) in the store like every judgment.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab_hooks.eval import stats
from lab_hooks.eval.judge import judge_conversation, load_judge_prompts

CATEGORIES = ("math", "reasoning", "coding")  # the ones MT-Bench has reference answers for
CATEGORY = "calibration"  # not a reference category: judged with single-v1, no reference shown
DEGRADATIONS = ("truncated", "off_topic", "shuffled", "wrong_answer")
MIN_WORDS = 20  # shorter references cannot be truncated or shuffled into something clearly worse
MIN_GAP = 1.0  # rating points (of 10) between references and degraded answers to pass
QUESTIONS = 10  # default size of the set; the shortest references first (cheapest to judge)
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class CalibrationItem:
    question_id: str
    question: str
    answers: dict[str, str]  # "reference" and each degradation -> answer text


def _wrong_answer(text: str) -> str:
    """The text with its last number changed (n -> 2n + 3, never equal to n)."""
    last = list(_NUMBER.finditer(text))[-1]
    return text[:last.start()] + str(int(last.group()) * 2 + 3) + text[last.end():]


def calibration_set(data_dir: Path, questions: int = QUESTIONS, seed: int = 0) -> list[CalibrationItem]:
    """The fixed set: the `questions` shortest usable references and their degraded versions."""
    with open(data_dir / "question.jsonl", encoding="utf-8") as fh:
        asked = {str(r["question_id"]): r for r in map(json.loads, filter(str.strip, fh))}
    with open(data_dir / "reference_answer" / "gpt-4.jsonl", encoding="utf-8") as fh:
        refs = {str(r["question_id"]): r["choices"][0]["turns"][0] for r in map(json.loads, filter(str.strip, fh))}
    usable = sorted(
        (qid for qid, ref in refs.items()
         if asked.get(qid, {}).get("category") in CATEGORIES and len(ref.split()) >= MIN_WORDS and _NUMBER.search(ref)),
        key=lambda qid: (len(refs[qid]), qid))[:questions]
    items = []
    for n, qid in enumerate(usable):
        reference = refs[qid]
        words = reference.split()
        shuffled = list(words)
        random.Random(f"{seed}:{qid}").shuffle(shuffled)
        items.append(CalibrationItem(qid, asked[qid]["turns"][0], {
            "reference": reference,
            "truncated": " ".join(words[: len(words) // 3]),
            "off_topic": refs[usable[(n + 1) % len(usable)]],
            "shuffled": " ".join(shuffled),
            "wrong_answer": _wrong_answer(reference),
        }))
    return items


def set_hash(items: list[CalibrationItem]) -> str:
    rows = [[i.question_id, i.question, sorted(i.answers.items())] for i in items]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


def conversations(items: list[CalibrationItem], judge_prompts: Path, prefill: str | None) -> list[list[dict]]:
    """One judge conversation per (item, answer), items in order, answers in ("reference", *DEGRADATIONS) order."""
    prompts = load_judge_prompts(judge_prompts)
    return [judge_conversation(prompts, CATEGORY, [item.question], [item.answers[variant]], 1, None, prefill)
            for item in items for variant in ("reference", *DEGRADATIONS)]


def gate(items: list[CalibrationItem], ratings: list[float | None], *, seed: int,
         resamples: int = stats.RESAMPLES) -> dict:
    """Pass or fail from the ratings `conversations` asked for (None: no usable rating)."""
    width = 1 + len(DEGRADATIONS)
    grid = np.array([np.nan if r is None else r for r in ratings], dtype=float).reshape(len(items), width)
    result = stats.separation(grid[:, 0], grid[:, 1:], group="calibration", seed=seed, resamples=resamples)
    by_variant = {variant: _mean(grid[:, k]) for k, variant in enumerate(("reference", *DEGRADATIONS))}
    passed = bool(result["ci"] and result["ci"][0] > 0 and result["gap"] >= MIN_GAP)
    return {"passed": passed, **result, "min_gap": MIN_GAP, "questions": [i.question_id for i in items],
            "mean_rating": by_variant, "unrated": int(np.isnan(grid).sum())}


def _mean(column: np.ndarray) -> float | None:
    column = column[np.isfinite(column)]
    return round(float(column.mean()), 4) if column.size else None


def verdict_key(judge_id: str) -> str:
    """The store record holding a judge's latest gate result (whatever set and settings it was rated with)."""
    from lab_hooks.store.keys import artifact_key

    return artifact_key("judge-calibration", judge=judge_id)


def latest_verdict(store, judge_id: str) -> dict | None:
    """A judge's latest calibration result, or None if it was never calibrated here: the hook
    for other stages that want to trust a judge's scores (e.g. SDG's judge steps)."""
    return store.record_get(verdict_key(judge_id)) if store is not None else None
