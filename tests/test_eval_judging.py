"""G-Eval ratings from token log-probabilities, the calibration gate and pairwise judging.

The log-probability arithmetic is checked on hand-made token streams (what a backend
reports); test_eval_judging_backends.py checks that each real backend reports them.
The gate and the pairwise mode run evaluate() with rule-following judges (the models
are not under test here; the verdict logic is)."""

import json
import math

import pytest
from test_eval import FAST, Judge, Model, check_schema, judged_answer

from lab_hooks.eval import Settings, evaluate, render
from lab_hooks.eval.calibration import DEGRADATIONS, calibration_set
from lab_hooks.eval.judge import LOGPROB, PARSED, logprob_rating, rate
from lab_hooks.eval.pairwise import outcome, parse_verdict
from lab_hooks.models.types import Completion, SamplingParams, TokenLogprob


def lp(p: float) -> float:
    return math.log(p)


def tok(text, p, *alternatives):
    return TokenLogprob(text, lp(p), tuple((t, lp(q)) for t, q in alternatives))


def test_prefilled_rating_is_the_expectation_over_the_rating_tokens():
    tokens = [tok("7", 0.5, ("7", 0.5), ("8", 0.3), ("6", 0.2)), tok("]]", 0.99)]
    draft = logprob_rating(tokens, prefilled=True)
    rating, mass = draft.rating()
    assert rating == pytest.approx(0.5 * 7 + 0.3 * 8 + 0.2 * 6) and mass == pytest.approx(1.0)


def test_rating_position_is_found_after_an_explanation_and_inside_a_merged_token():
    tokens = [tok("Good answer. Rating: ", 0.9), tok("[[9", 0.6, ("[[9", 0.6), ("[[8", 0.4)), tok("]]", 0.9)]
    rating, _ = logprob_rating(tokens, prefilled=False).rating()
    assert rating == pytest.approx(0.6 * 9 + 0.4 * 8)
    assert logprob_rating([tok("No rating here.", 0.9)], prefilled=False) is None


def test_a_one_that_starts_a_ten_is_settled_by_the_next_token():
    # Digits split: "1" then "0" is a 10. The judgment wrote "1", so its next token says how much was 10.
    tokens = [tok("1", 0.8, ("1", 0.8), ("9", 0.2)), tok("0", 0.75, ("0", 0.75), ("]]", 0.25))]
    rating, _ = logprob_rating(tokens, prefilled=True).rating()
    assert rating == pytest.approx(0.8 * (0.75 * 10 + 0.25 * 1) + 0.2 * 9)


def test_an_unwritten_one_asks_the_judge_for_its_next_token():
    tokens = [tok("9", 0.7, ("9", 0.7), ("1", 0.3)), tok("]]", 0.99)]
    draft = logprob_rating(tokens, prefilled=True)
    assert draft.followup == "1" and draft.rating() is None
    draft.resolve([("0", lp(0.5)), ("]]", lp(0.5))])
    assert draft.rating()[0] == pytest.approx(0.7 * 9 + 0.3 * (0.5 * 10 + 0.5 * 1))


def test_too_little_mass_on_ratings_falls_back_to_the_parsed_rating():
    tokens = [tok("I", 0.9, ("I", 0.9), ("5", 0.1))]
    assert logprob_rating(tokens, prefilled=True).rating() is None


class LogprobJudge:
    """Answers every prefilled judgment with "1" and reports a 50/50 split between 1 and 9;
    asked to continue after "1", reports a 40 % chance that a "0" follows."""

    spec = "test:logprob-judge"

    def __init__(self):
        self.calls = []

    def chat(self, conversations, params):
        self.calls.append((conversations, params))
        if params.max_tokens == 1:  # the follow-up after the written "1"
            assert all(c[-1]["content"].endswith("[[1") for c in conversations)
            return [[Completion("0", 10, 1, "length", (tok("0", 0.4, ("0", 0.4), ("]]", 0.6)),))]
                    for _ in conversations]
        first = tok("9", 0.5, ("9", 0.5), ("1", 0.5))
        return [[Completion("9]]", 10, 2, "stop", (first, tok("]]", 1.0)))] for _ in conversations]


def test_rate_asks_the_follow_up_and_records_how_each_rating_was_made():
    judge = LogprobJudge()
    conv = [{"role": "user", "content": "judge this"}, {"role": "assistant", "content": "Rating: [["}]
    [[judgment]] = rate(judge, [conv], SamplingParams(max_tokens=8, logprobs=20), "Rating: [[")
    assert judgment.scoring == LOGPROB and judgment.text == "Rating: [[9]]"
    assert judgment.rating == pytest.approx(0.5 * 9 + 0.5 * (0.4 * 10 + 0.6 * 1))
    assert len(judge.calls) == 2  # the judgment, then one token after "Rating: [[1"
    # A backend without log-probabilities: the parsed [[n]].
    [[parsed]] = rate(Judge(), [[{"role": "system", "content": "s"}, {"role": "user", "content":
                                 "[The Start of Assistant's Answer]\ngood\n[The End of Assistant's Answer]"}]],
                      SamplingParams(logprobs=20), None)
    assert (parsed.rating, parsed.scoring) == (5, PARSED)


def test_calibration_set_degrades_each_reference_four_ways():
    from lab_hooks.assets import mtbench_data_dir

    items = calibration_set(mtbench_data_dir(), 6, seed=0)
    assert len(items) == 6 and len({i.question_id for i in items}) == 6
    for item in items:
        ref = item.answers["reference"]
        assert set(item.answers) == {"reference", *DEGRADATIONS}
        assert len(item.answers["truncated"]) < len(ref) / 2
        assert sorted(item.answers["shuffled"].split()) == sorted(ref.split()) != item.answers["shuffled"].split()
        assert item.answers["off_topic"] != ref and item.answers["wrong_answer"] != ref
    assert calibration_set(mtbench_data_dir(), 6, seed=0) == items  # fixed


class IndifferentJudge(Judge):
    """Rates every answer 6, good or broken: it cannot tell them apart."""

    spec = "test:indifferent"

    def rating(self, prompt):
        return 6


def test_a_judge_that_separates_references_from_degraded_answers_passes(store):
    results = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), Judge(), [], store, settings=FAST)
    calibration = results["judge"]["calibration"]
    assert calibration["passed"] and calibration["n"] == 10 and calibration["gap"] == 6.0
    assert calibration["auc"] == 1.0 and calibration["mean_rating"]["reference"] == 9.0
    assert results["mtbench"]["overall"]["verdict"] == "improved"
    assert "The judge passed calibration" in render(results)
    check_schema(results)


def test_a_judge_that_cannot_separate_them_fails_and_draws_no_verdict(store):
    judge = IndifferentJudge()
    results = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), judge, [], store, settings=FAST)
    calibration = results["judge"]["calibration"]
    assert not calibration["passed"] and calibration["gap"] == 0.0 and calibration["auc"] == 0.5
    mt = results["mtbench"]
    assert mt["overall"]["delta"] == 0.0 and mt["overall"]["verdict"] == "not drawn"
    assert {c["verdict"] for c in mt["categories"].values()} == {"not drawn"}
    text = render(results)
    assert "judge failed calibration — these scores do not measure quality" in text
    check_schema(results)
    from lab_hooks.eval.calibration import latest_verdict

    assert latest_verdict(store, "test:indifferent")["passed"] is False  # what other stages may ask
    assert latest_verdict(store, "test:never-calibrated") is None
    # Cached per judge: a second evaluation with the same judge does not rate the set again.
    again = IndifferentJudge()
    evaluate(Model("test:base", "plain"), Model("test:cand", "good"), again, [], store, settings=FAST)
    assert not again.calls


class BiasedJudge(Judge):
    """Prefers assistant A whenever both answers are equally good: pure position bias."""

    spec = "test:biased"

    def chat(self, conversations, params):
        if not any("Assistant B" in conv[1]["content"] for conv in conversations):
            return super().chat(conversations, params)  # single ratings (calibration) as a fair judge
        out = []
        for conv in conversations:
            a, b = _side(conv[1]["content"], "A"), _side(conv[1]["content"], "B")
            verdict = "A" if a.count("good") >= b.count("good") else "B"
            out.append([Completion(f"Because. [[{verdict}]]", 10, 3, "stop")] * params.n)
        return out


def _side(prompt: str, who: str) -> str:
    marker = f"[The Start of Assistant {who}'s Answer]"
    if marker in prompt:
        return prompt.split(marker)[1].split(f"[The End of Assistant {who}'s Answer]")[0]
    return prompt.split(f"<|The Start of Assistant {who}'s Conversation with User|>")[1].split(
        f"<|The End of Assistant {who}'s Conversation with User|>")[0]


def test_pairwise_swaps_positions_and_counts_a_flip_as_a_tie(store):
    settings = Settings(quick=1, resamples=2000, max_tokens=16, judge_max_tokens=16, pairwise=True)
    better = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), BiasedJudge(), [], store,
                      settings=settings)["pairwise"]
    assert (better["wins"], better["ties"], better["losses"], better["n"]) == (8, 0, 0, 8)
    assert better["win_rate"] == 1.0 and better["verdict"] == "improved"
    same = evaluate(Model("test:base", "plain"), Model("test:same", "plain"), BiasedJudge(), [], store,
                    settings=settings)
    pairs = same["pairwise"]
    # Equal answers: the judge picks A both times, i.e. base first then candidate first: a flip, a tie.
    assert (pairs["wins"], pairs["ties"], pairs["losses"]) == (0, 8, 0) and pairs["verdict"] == "within noise"
    assert "Pairwise" in render(same)
    check_schema(same)


@pytest.mark.parametrize("first,second,expected", [
    ("B", "A", 1.0), ("A", "B", 0.0), ("C", "C", 0.5), ("A", "A", 0.5), ("B", "C", 0.5), (None, "A", None)])
def test_pairwise_outcome(first, second, expected):
    game = {"base_first": {"verdict": first}, "candidate_first": {"verdict": second}}
    assert outcome(game) == expected
    assert parse_verdict("so [[B]]") == "B" and parse_verdict("[[D]]") is None


@pytest.fixture
def store(tmp_path):
    from lab_hooks.store import Store

    return Store(tmp_path / "store")


def test_judged_answer_helper_finds_the_answer():
    assert judged_answer("[The Start of Assistant's Answer]\nx\n[The End of Assistant's Answer]").strip() == "x"
    assert json.dumps(FAST.judge_params().logprobs) == "20"
