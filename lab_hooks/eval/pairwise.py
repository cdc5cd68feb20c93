"""Pairwise judging with position swap (MT-Bench's pairwise-baseline mode), an option.

For every MT-Bench question and turn the judge sees the base's and the candidate's
answers side by side with FastChat's `pair-v2` prompts (`pair-math-v1`, against the
reference, where the category needs one), once in each order. It names the better
one as `[[A]]`, `[[B]]` or `[[C]]` (tie). A verdict that flips when the answers swap
places is position bias, not a preference: it counts as a tie, as in FastChat. A
question's outcome for the candidate is 1 (win), 0.5 (tie) or 0 (loss), averaged over
its turns; a game with an unusable judgment in either order is left out (counted).
"""

from __future__ import annotations

import dataclasses
import re

from lab_hooks.eval.judge import NEED_REF_CATEGORIES, load_judge_prompts, rate

PAIR_PREFILL = "[["  # the smoke-test judge's answer starts at the verdict, as single ratings do
_VERDICT = re.compile(r"\[\[([ABC])\]\]")


def prompt_name(category: str, turn: int) -> str:
    name = "pair-math-v1" if category in NEED_REF_CATEGORIES else "pair-v2"
    return name + ("-multi-turn" if turn == 2 else "")


def pair_conversation(prompts, question, answers_a: list[str], answers_b: list[str], turn: int,
                      prefill: str | None) -> list[dict]:
    """The chat a judge sees to compare assistant A and B on `turn` of `question` (a questions.Question)."""
    prompt = prompts[prompt_name(question.category, turn)]
    fields: dict[str, str] = {}
    if question.category in NEED_REF_CATEGORIES:
        fields["ref_answer_1"] = question.references[0]
        if turn == 2:
            fields["ref_answer_2"] = question.references[1]
    if turn == 2:
        fields.update(question_1=question.turns[0], question_2=question.turns[1], answer_a_1=answers_a[0],
                      answer_a_2=answers_a[1], answer_b_1=answers_b[0], answer_b_2=answers_b[1])
    else:
        fields.update(question=question.turns[0], answer_a=answers_a[0], answer_b=answers_b[0])
    chat = [{"role": "system", "content": prompt.system_prompt},
            {"role": "user", "content": prompt.prompt_template.format(**fields)}]
    return chat + [{"role": "assistant", "content": prefill}] if prefill else chat


def parse_verdict(judgment: str) -> str | None:
    """"A", "B", "C" (tie) from FastChat's `[[X]]`, or None."""
    match = _VERDICT.search(judgment)
    return match.group(1) if match else None


def judge_pairs(judge, qset, answers: dict[str, list[list[str]]], params, prefill: str | None) -> dict:
    """Both orders of every (question, turn): {"games": [[{"base_first", "candidate_first"} per turn] per question]}.

    `answers`: per role ("base", "candidate"), the answers per question per turn.
    Judgments are parsed (log-probabilities would rate a letter, not a score).
    """
    prompts = load_judge_prompts(qset.judge_prompts, "pairwise")
    requests, where = [], []
    for qi, q in enumerate(qset.questions):
        for turn in range(1, len(q.turns) + 1):
            for order, (a, b) in (("base_first", ("base", "candidate")), ("candidate_first", ("candidate", "base"))):
                requests.append(pair_conversation(prompts, q, answers[a][qi], answers[b][qi], turn, prefill))
                where.append((qi, turn, order))
    games = [[{} for _ in q.turns] for q in qset.questions]
    for (qi, turn, order), (judgment, *_) in zip(where, rate(judge, requests, dataclasses.replace(params, logprobs=0), prefill)):
        games[qi][turn - 1][order] = {"text": judgment.text, "verdict": parse_verdict(judgment.text)}
    return {"games": games}


def outcome(game: dict) -> float | None:
    """The candidate's result in one swapped pair of games: 1, 0.5 or 0; None if either judgment is unusable."""
    first, second = game["base_first"]["verdict"], game["candidate_first"]["verdict"]
    if first is None or second is None:
        return None
    # base_first: B is the candidate; candidate_first: A is the candidate.
    candidate = {"B": 1.0, "A": 0.0, "C": 0.5}[first], {"A": 1.0, "B": 0.0, "C": 0.5}[second]
    return candidate[0] if candidate[0] == candidate[1] else 0.5


def question_outcomes(games: list[list[dict]]) -> tuple[list[float], int]:
    """Per question, the mean outcome over its usable turns (NaN if none), and how many games were unusable."""
    values, unusable = [], 0
    for turns in games:
        results = [outcome(g) for g in turns]
        unusable += sum(r is None for r in results)
        usable = [r for r in results if r is not None]
        values.append(sum(usable) / len(usable) if usable else float("nan"))
    return values, unusable
