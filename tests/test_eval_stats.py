"""Judge prompt formatting, rating parsing and the statistics: pure and instant."""

import json

import numpy as np
import pytest

from lab_hooks.eval import stats
from lab_hooks.eval.judge import judge_conversation, load_judge_prompts, parse_rating, prompt_name

# The four `single` prompts of FastChat's judge_prompts.jsonl, shortened to their placeholders.
PROMPTS = [
    {"name": "single-v1", "type": "single", "system_prompt": "S1", "output_format": "[[rating]]",
     "prompt_template": "Q={question} A={answer}"},
    {"name": "single-math-v1", "type": "single", "system_prompt": "S2", "output_format": "[[rating]]",
     "prompt_template": "Q={question} R={ref_answer_1} A={answer}"},
    {"name": "single-v1-multi-turn", "type": "single", "system_prompt": "S3", "output_format": "[[rating]]",
     "prompt_template": "Q1={question_1} A1={answer_1} Q2={question_2} A2={answer_2}"},
    {"name": "single-math-v1-multi-turn", "type": "single", "system_prompt": "S4", "output_format": "[[rating]]",
     "prompt_template": "Q1={question_1} R1={ref_answer_1} A1={answer_1} Q2={question_2} R2={ref_answer_2} "
                        "A2={answer_2}"},
    {"name": "pair-v2", "type": "pairwise", "system_prompt": "P", "output_format": "[[A]]",
     "prompt_template": "{question}"},
]


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "judge_prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return load_judge_prompts(path)


def test_only_single_prompts_are_loaded(prompts):
    assert sorted(prompts) == ["single-math-v1", "single-math-v1-multi-turn", "single-v1", "single-v1-multi-turn"]


@pytest.mark.parametrize("category,turn,name", [
    ("writing", 1, "single-v1"), ("writing", 2, "single-v1-multi-turn"),
    ("math", 1, "single-math-v1"), ("reasoning", 2, "single-math-v1-multi-turn"),
    ("coding", 1, "single-math-v1"), ("taxonomy", 1, "single-math-v1"), ("stem", 2, "single-v1-multi-turn"),
])
def test_prompt_choice_follows_fastchat(category, turn, name):
    assert prompt_name(category, turn) == name


def test_turn_two_shows_the_whole_conversation_and_both_references(prompts):
    conv = judge_conversation(prompts, "math", ["q1", "q2"], ["a1", "a2"], 2, ["r1", "r2"])
    assert conv == [{"role": "system", "content": "S4"},
                    {"role": "user", "content": "Q1=q1 R1=r1 A1=a1 Q2=q2 R2=r2 A2=a2"}]
    single = judge_conversation(prompts, "math", ["q1", "q2"], ["a1", "a2"], 1, ["r1", "r2"])
    assert single[1]["content"] == "Q=q1 R=r1 A=a1"
    general = judge_conversation(prompts, "writing", ["q1", "q2"], ["a1", "a2"], 1)
    assert general == [{"role": "system", "content": "S1"}, {"role": "user", "content": "Q=q1 A=a1"}]


def test_reference_category_without_reference_is_refused(prompts):
    with pytest.raises(ValueError, match="needs a reference"):
        judge_conversation(prompts, "coding", ["q"], ["a"], 1)


def test_real_mtbench_prompts_format(mtbench_dir):
    prompts = load_judge_prompts(mtbench_dir / "judge_prompts.jsonl")
    conv = judge_conversation(prompts, "reasoning", ["Q one", "Q two"], ["A one", "A two"], 2, ["R one", "R two"])
    text = conv[1]["content"]
    assert "### Reference answer:\nR two" in text and "### Assistant A:\nA two" in text
    assert "[[rating]]" in conv[0]["content"]


@pytest.mark.parametrize("text,rating", [
    ("The answer is fine. Rating: [[7]]", 7.0),
    ("Rating: [[8.5]]", 8.5),
    ("Rating: [6]", 6.0),  # FastChat's backup pattern
    ("first [[3]] then [[9]]", 3.0),
    ("Rating: [[10]]", 10.0),
    ("Rating: 7/10", None),
    ("Rating: [[0]]", None),  # outside 1-10: an error, not a score
    ("Rating: [[42]]", None),
    ("", None),
    ("[[seven]]", None),
])
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


def _ratings(values):
    """Per question a (turns, repeats) array; None becomes NaN (an error)."""
    return [np.array([[np.nan if v is None else v for v in turn] for turn in q], dtype=float) for q in values]


def test_scores_are_means_over_valid_judgments_only():
    base = _ratings([[[4], [None]], [[6], [8]]])  # one error: 3 valid judgments, mean 6
    cand = _ratings([[[5], [5]], [[5], [5]]])
    d = stats.paired_delta(base, cand, group="g", seed=0, resamples=1000)
    assert d["base"] == 6.0 and d["candidate"] == 5.0 and d["delta"] == -1.0
    turn2 = stats.paired_delta(base, cand, group="g", seed=0, turn=2, resamples=1000)
    assert turn2["base"] == 8.0
    errors = stats.error_summary(base)
    assert errors == {"judgments": 4, "errors": 1, "rate": 0.25}


def test_bootstrap_ci_is_deterministic_and_covers_the_truth():
    rng = np.random.default_rng(1)
    n = 80
    base = rng.integers(1, 11, size=(n, 2, 1)).astype(float)
    cand = np.clip(base + rng.normal(0.5, 1.5, size=base.shape), 1, 10)
    first = stats.paired_delta(list(base), list(cand), group="mt-bench", seed=7)
    again = stats.paired_delta(list(base), list(cand), group="mt-bench", seed=7)
    other_seed = stats.paired_delta(list(base), list(cand), group="mt-bench", seed=8)
    assert first == again
    assert first["ci"] != other_seed["ci"]
    low, high = first["ci"]
    assert low < first["delta"] < high
    assert first["verdict"] == stats.IMPROVED
    # Against the textbook standard error of a paired mean difference.
    diffs = (cand - base).mean(axis=(1, 2))
    se = diffs.std(ddof=1) / np.sqrt(n)
    assert abs((high - low) - 2 * 1.96 * se) < 0.25 * 2 * 1.96 * se


def test_verdicts():
    same = _ratings([[[5]]] * 10)
    better = _ratings([[[5 + (i % 3)]] for i in range(10)])
    worse = _ratings([[[5 - (i % 3)]] for i in range(10)])
    noisy = _ratings([[[5 + (1 if i % 2 else -1)]] for i in range(10)])
    assert stats.paired_delta(same, better, group="g", seed=0)["verdict"] == stats.IMPROVED
    assert stats.paired_delta(same, worse, group="g", seed=0)["verdict"] == stats.REGRESSED
    assert stats.paired_delta(same, noisy, group="g", seed=0)["verdict"] == stats.WITHIN_NOISE
    few = stats.paired_delta(same[:2], better[:2], group="g", seed=0)
    assert few["verdict"] == stats.INSUFFICIENT and few["n_questions"] == 2


def test_one_question_gets_a_delta_but_no_interval():
    """A bootstrap of one question redraws it every time: its CI would read [Δ, Δ], a false certainty."""
    one = stats.paired_delta(_ratings([[[4]]]), _ratings([[[7]]]), group="g", seed=0)
    assert one["delta"] == 3 and one["ci"] is None and one["verdict"] == stats.INSUFFICIENT
    two = stats.paired_delta(_ratings([[[4]], [[5]]]), _ratings([[[7]], [[5]]]), group="g", seed=0)
    assert two["ci"][0] < two["ci"][1]


def test_all_errors_give_no_score():
    base = _ratings([[[None]]] * 6)
    cand = _ratings([[[5]]] * 6)
    d = stats.paired_delta(base, cand, group="g", seed=0, resamples=1000)
    assert d["base"] is None and d["delta"] is None and d["ci"] is None
    assert d["verdict"] == stats.INSUFFICIENT


def test_judge_noise_from_repeats():
    ratings = _ratings([[[5, 7], [6, 6]], [[4, None], [8, 6]]])
    noise = stats.judge_noise(ratings)
    # Items with two valid ratings: var(5,7)=2, var(6,6)=0, var(8,6)=2 -> pooled sd 1.1547
    assert noise["repeats"] == 2 and noise["item_sd"] == pytest.approx(1.1547, abs=1e-4)
    # Repeat 0: (5+6+4+8)/4 = 5.75; repeat 1: (7+6+6)/3 = 6.333
    assert noise["overall_range"] == [5.75, 6.3333]
    assert stats.judge_noise(_ratings([[[5], [6]]])) is None


def test_paired_needs_pairs():
    with pytest.raises(ValueError, match="pairs"):
        stats.paired_delta(_ratings([[[5]]]), [], group="g", seed=0)


def test_bootstrap_is_vectorised_fast():
    import time

    rng = np.random.default_rng(0)
    base = list(rng.integers(1, 11, size=(80, 2, 3)).astype(float))
    start = time.perf_counter()
    stats.paired_delta(base, base[::-1], group="g", seed=0, resamples=10_000)
    assert time.perf_counter() - start < 2.0


@pytest.fixture(scope="module")
def mtbench_dir():
    from lab_hooks.assets import mtbench_data_dir

    return mtbench_data_dir()


def _answers(rng, n, mean, tokens=20):
    return [rng.normal(mean, 0.3, tokens).clip(0.01) for _ in range(n)]


def test_excess_is_the_leaf_move_beyond_the_controls_move():
    rng = np.random.default_rng(0)
    leaf_base, controls_base = _answers(rng, 8, 2.0), _answers(rng, 15, 2.0)
    # Training moved every leaf by -0.1 nats/token; the trained leaf by -0.6.
    leaf_cand = [a - 0.6 for a in leaf_base]
    controls_cand = [a - 0.1 for a in controls_base]
    moved = stats.excess_delta((leaf_base, leaf_cand), (controls_base, controls_cand), group="g", seed=0,
                               min_effect=0.05, resamples=2000)
    assert moved["excess"] == pytest.approx(-0.5, abs=1e-3) and moved["controls_delta"] == pytest.approx(-0.1, abs=1e-3)
    assert moved["ci"][1] < 0 and moved["verdict"] == stats.IMPROVED
    # Moving only as much as the controls did is no improvement, however significant on its own.
    along = stats.excess_delta((leaf_base, [a - 0.1 for a in leaf_base]), (controls_base, controls_cand),
                               group="g", seed=0, min_effect=0.05, resamples=2000)
    assert along["verdict"] == stats.WITHIN_NOISE and abs(along["excess"]) < 1e-3
    worse = stats.excess_delta((leaf_base, [a + 0.3 for a in leaf_base]), (controls_base, controls_cand),
                               group="g", seed=0, min_effect=0.05, resamples=2000)
    assert worse["verdict"] == stats.REGRESSED
    # Significant but smaller than the minimum effect: within noise.
    tiny = stats.excess_delta((leaf_base, [a - 0.13 for a in leaf_base]), (controls_base, controls_cand),
                              group="g", seed=0, min_effect=0.05, resamples=2000)
    assert tiny["ci"][1] < 0 and tiny["verdict"] == stats.WITHIN_NOISE
    alone = stats.excess_delta((leaf_base, leaf_cand), ([], []), group="g", seed=0, min_effect=0.05, resamples=2000)
    assert alone["controls_delta"] is None and alone["excess"] == pytest.approx(-0.6, abs=1e-3)
    few = stats.excess_delta((leaf_base[:3], leaf_cand[:3]), (controls_base, controls_cand), group="g", seed=0,
                             min_effect=0.05, resamples=2000)
    assert few["verdict"] == stats.INSUFFICIENT


def test_separation_gap_ci_and_auc():
    good = np.array([9.0, 8.0, 9.0, 7.0, 8.0, 9.0])
    bad = np.array([[2.0, 3.0, 1.0, 4.0]] * 6)
    result = stats.separation(good, bad, group="c", seed=0, resamples=2000)
    assert result["gap"] == pytest.approx(good.mean() - 2.5, abs=1e-4) and result["auc"] == 1.0 and result["ci"][0] > 4
    flat = stats.separation(np.full(6, 5.0), np.full((6, 4), 5.0), group="c", seed=0, resamples=2000)
    assert flat["gap"] == 0.0 and flat["auc"] == 0.5 and flat["ci"] == [0.0, 0.0]
    assert stats.separation(np.full(3, np.nan), np.ones((3, 4)), group="c", seed=0)["n"] == 0


def test_win_rate_counts_and_verdict():
    result = stats.win_rate([1, 1, 1, 0.5, 1, 1, 0, 1], group="p", seed=0, resamples=2000)
    assert (result["wins"], result["ties"], result["losses"], result["n"]) == (6, 1, 1, 8)
    assert result["win_rate"] == pytest.approx(6.5 / 8) and result["verdict"] == stats.IMPROVED
    assert stats.win_rate([0.5] * 8, group="p", seed=0, resamples=2000)["verdict"] == stats.WITHIN_NOISE
    assert stats.win_rate([float("nan")], group="p", seed=0)["verdict"] == stats.INSUFFICIENT
