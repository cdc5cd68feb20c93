"""Scores and deltas that say how sure they are.

A model's ratings for one question are an array of shape (turns, repeats):
one judgment per turn and judge repeat, NaN where the judgment had no usable
rating. A score is the mean over all valid judgments of a group of questions
(a ratio of sums, so a question with an error weighs one judgment less, and
no error is ever averaged in as a number).

The delta of a group (overall, a turn, a category, a leaf) gets a 95 % CI
from a paired bootstrap over its questions: every resample draws the same
questions for base and candidate, so the CI reflects how much the delta
depends on which questions were asked, judge noise included (it is part of
each question's score). The random stream of a group depends only on the seed
and the group's name, so same inputs and seed give identical numbers.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
# Below this many questions a percentile bootstrap has too few distinct
# resamples to mean anything; such deltas are reported without a verdict.
MIN_QUESTIONS = 5

IMPROVED, REGRESSED, WITHIN_NOISE, INSUFFICIENT = "improved", "regressed", "within noise", "insufficient data"


def _sums(ratings: list[np.ndarray], turn: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per question: the sum and the count of valid ratings (of one turn, or all)."""
    rows = [r if turn is None else r[turn - 1: turn] for r in ratings]
    sums = np.array([np.nansum(r) for r in rows], dtype=float)
    counts = np.array([np.count_nonzero(~np.isnan(r)) for r in rows], dtype=float)
    return sums, counts


def _mean(total: float, count: float) -> float | None:
    return float(total / count) if count else None


def _group_rng(seed: int, group: str) -> np.random.Generator:
    salt = int.from_bytes(hashlib.sha256(group.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence([seed, salt]))


def verdict(ci: list[float] | None, n_questions: int) -> str:
    if ci is None or n_questions < MIN_QUESTIONS:
        return INSUFFICIENT
    if ci[0] > 0:
        return IMPROVED
    if ci[1] < 0:
        return REGRESSED
    return WITHIN_NOISE


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def paired_delta(
    base: list[np.ndarray],
    candidate: list[np.ndarray],
    *,
    group: str,
    seed: int,
    turn: int | None = None,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict:
    """Base and candidate scores of one group of questions, their delta, its CI and verdict."""
    if len(base) != len(candidate):
        raise ValueError(f"{group}: {len(base)} base vs {len(candidate)} candidate questions; pairs needed")
    b_sum, b_cnt = _sums(base, turn)
    c_sum, c_cnt = _sums(candidate, turn)
    b_mean, c_mean = _mean(b_sum.sum(), b_cnt.sum()), _mean(c_sum.sum(), c_cnt.sum())
    delta = None if b_mean is None or c_mean is None else c_mean - b_mean
    n = len(base)
    ci = None
    if delta is not None and n:
        weights = _group_rng(seed, group).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            deltas = (weights @ c_sum) / (weights @ c_cnt) - (weights @ b_sum) / (weights @ b_cnt)
        deltas = deltas[np.isfinite(deltas)]
        if deltas.size:
            tail = (1.0 - confidence) / 2 * 100
            low, high = np.percentile(deltas, [tail, 100 - tail])
            ci = [float(low), float(high)]
    return {
        "n_questions": n,
        "base": _round(b_mean),
        "candidate": _round(c_mean),
        "delta": _round(delta),
        "ci": None if ci is None else [_round(v) for v in ci],
        "verdict": verdict(ci, n),
    }


def error_summary(ratings: list[np.ndarray]) -> dict:
    """How many judgments there were and how many had no usable rating."""
    total = sum(r.size for r in ratings)
    errors = sum(int(np.count_nonzero(np.isnan(r))) for r in ratings)
    return {"judgments": total, "errors": errors, "rate": _round(errors / total) if total else 0.0}


def judge_noise(ratings: list[np.ndarray]) -> dict | None:
    """With repeated judgments of the same answers: how much the judge alone moves scores.

    `item_sd`: the pooled standard deviation of one judgment around its
    repeats' mean; `overall_sd` / `overall_range`: the spread of the overall
    score computed from each repeat alone (FastChat#3018 reports ~0.2 for
    GPT-4 between identical runs).
    """
    repeats = ratings[0].shape[1] if ratings else 0
    if repeats < 2:
        return None
    stacked = np.concatenate([r.reshape(-1, repeats) for r in ratings])  # (items, repeats)
    valid = np.count_nonzero(~np.isnan(stacked), axis=1)
    usable = stacked[valid >= 2]
    item_var = np.nanvar(usable, axis=1, ddof=1) if usable.size else np.array([])
    per_repeat = [
        float(np.nanmean(stacked[:, k])) for k in range(repeats) if np.count_nonzero(~np.isnan(stacked[:, k]))
    ]
    return {
        "repeats": repeats,
        "item_sd": _round(math.sqrt(float(item_var.mean()))) if item_var.size else None,
        "overall_sd": _round(float(np.std(per_repeat, ddof=1))) if len(per_repeat) >= 2 else None,
        "overall_range": [_round(min(per_repeat)), _round(max(per_repeat))] if per_repeat else None,
    }
