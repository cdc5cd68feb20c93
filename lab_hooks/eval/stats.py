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
NOT_DRAWN = "not drawn"  # the judge failed its calibration: its scores decide nothing


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
    if delta is not None and n >= 2:  # one question resamples only to itself: a CI of [Δ, Δ] would claim certainty
        weights = _resample_weights(_group_rng(seed, group), n, resamples)
        ci = _interval(_ratio_resamples(weights, c_sum, c_cnt) - _ratio_resamples(weights, b_sum, b_cnt), confidence)
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


def _ratio_resamples(weights: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ sums) / (weights @ counts)


def _resample_weights(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def _interval(values: np.ndarray, confidence: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    tail = (1.0 - confidence) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def excess_delta(
    leaf: tuple[list[np.ndarray], list[np.ndarray]],
    controls: tuple[list[np.ndarray], list[np.ndarray]],
    *,
    group: str,
    seed: int,
    min_effect: float,
    lower_is_better: bool = True,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict:
    """How much more a leaf moved than the control leaves did, with a joint bootstrap CI.

    `leaf` and `controls` are (base, candidate) lists of per-item arrays (e.g. one
    answer's token NLLs); a group's value is the ratio of sums over its items. Each
    resample draws the leaf's items and the controls' items independently (paired
    base/candidate within each), so the CI carries the uncertainty of both deltas.
    Training moves every leaf a little; a verdict needs the excess's CI to exclude
    0 *and* its size to reach `min_effect`. With no control items the excess is the
    leaf's own delta.
    """
    sums = {name: [_sums(side, None) for side in pair] for name, pair in (("leaf", leaf), ("controls", controls))}
    rng = _group_rng(seed, group)

    def delta_of(name: str, weights: np.ndarray | None) -> np.ndarray | float:
        (b_sum, b_cnt), (c_sum, c_cnt) = sums[name]
        if weights is None:
            return float(c_sum.sum() / c_cnt.sum() - b_sum.sum() / b_cnt.sum())
        return _ratio_resamples(weights, c_sum, c_cnt) - _ratio_resamples(weights, b_sum, b_cnt)

    n_leaf, n_controls = len(leaf[0]), len(controls[0])
    if not n_leaf or not sums["leaf"][0][1].sum():
        return {"excess": None, "ci": None, "controls_delta": None, "verdict": INSUFFICIENT}
    leaf_deltas = delta_of("leaf", _resample_weights(rng, n_leaf, resamples))
    control_point, control_deltas = 0.0, 0.0
    if n_controls:
        control_point = delta_of("controls", None)
        control_deltas = delta_of("controls", _resample_weights(rng, n_controls, resamples))
    excess = delta_of("leaf", None) - control_point
    ci = _interval(leaf_deltas - control_deltas, confidence)
    return {"excess": _round(excess), "ci": None if ci is None else [_round(v) for v in ci],
            "controls_delta": _round(control_point) if n_controls else None,
            "verdict": effect_verdict(excess, ci, n_leaf, min_effect, lower_is_better)}


def effect_verdict(effect: float | None, ci: list[float] | None, n: int, min_effect: float,
                   lower_is_better: bool) -> str:
    """improved / regressed when the CI excludes 0 and the effect is at least `min_effect`."""
    if effect is None or ci is None or n < MIN_QUESTIONS:
        return INSUFFICIENT
    if abs(effect) < min_effect or ci[0] <= 0 <= ci[1]:
        return WITHIN_NOISE
    return IMPROVED if (effect < 0) == lower_is_better else REGRESSED


def separation(good: np.ndarray, bad: np.ndarray, *, group: str, seed: int, resamples: int = RESAMPLES,
               confidence: float = CONFIDENCE) -> dict:
    """How well ratings tell good answers from bad ones to the same questions.

    `good`: one rating per question (NaN: unusable); `bad`: (questions, variants). The
    gap is mean(good) - mean(bad) over questions with both, its CI a bootstrap over
    questions; AUC is the probability that a good answer outrates a bad one to the same
    question (ties count half).
    """
    good = np.asarray(good, dtype=float)
    bad = np.asarray(bad, dtype=float).reshape(len(good), -1)
    usable = np.isfinite(good) & np.isfinite(bad).any(axis=1)
    good, bad = good[usable], bad[usable]
    n = int(usable.sum())
    if not n:
        return {"n": 0, "gap": None, "ci": None, "auc": None}
    per_question = good - np.nanmean(bad, axis=1)
    weights = _resample_weights(_group_rng(seed, group), n, resamples)
    ci = _interval(weights @ per_question / n, confidence)
    pairs = good[:, None] - bad
    pairs = pairs[np.isfinite(pairs)]
    auc = float(np.mean((pairs > 0) + 0.5 * (pairs == 0)))
    return {"n": n, "gap": _round(float(per_question.mean())), "ci": None if ci is None else [_round(v) for v in ci],
            "auc": _round(auc)}


def win_rate(outcomes: list[float], *, group: str, seed: int, resamples: int = RESAMPLES,
             confidence: float = CONFIDENCE) -> dict:
    """Pairwise outcomes per question (1 win, 0.5 tie, 0 loss, NaN: no usable judgment):
    win/tie/loss counts and the candidate's win rate (ties half) with a bootstrap CI."""
    values = np.asarray(outcomes, dtype=float)
    values = values[np.isfinite(values)]
    n = int(values.size)
    counts = {"wins": int((values == 1).sum()), "ties": int((values == 0.5).sum()), "losses": int((values == 0).sum())}
    if not n:
        return {"n": 0, **counts, "win_rate": None, "ci": None, "verdict": INSUFFICIENT}
    rate = float(values.mean())
    ci = _interval(_resample_weights(_group_rng(seed, group), n, resamples) @ values / n, confidence)
    shifted = None if ci is None else [v - 0.5 for v in ci]
    return {"n": n, **counts, "win_rate": _round(rate), "ci": None if ci is None else [_round(v) for v in ci],
            "verdict": verdict(shifted, n)}
