"""What gets asked: MT-Bench (all of it or a stratified subset) and branch leaves' seed questions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

MTBENCH = "mt-bench"
BRANCH_CATEGORY = "taxonomy"  # judged against the reference, like InstructLab's mt_bench_branch


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    turns: tuple[str, ...]
    references: tuple[str, ...] | None  # one per turn, where the category needs them


@dataclass(frozen=True)
class QuestionSet:
    """Questions answered, judged and cached together: MT-Bench, or one leaf's seeds."""

    name: str
    questions: tuple[Question, ...]
    judge_prompts: Path  # the FastChat judge_prompts.jsonl to judge them with

    @property
    def hash(self) -> str:
        rows = [[q.id, q.category, list(q.turns), list(q.references or ())] for q in self.questions]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


def _rank(seed: int, name: str) -> str:
    # A fixed pseudo-random order that does not depend on what else is in the
    # list: the same subset / sample comes back run after run (and is cached).
    return hashlib.sha256(f"{seed}:{name}".encode("utf-8")).hexdigest()


def mtbench_set(data_dir: Path, quick: int | None = None, seed: int = 0) -> QuestionSet:
    """MT-Bench from FastChat-format files; `quick`: that many questions per category."""
    with open(data_dir / "question.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    with open(data_dir / "reference_answer" / "gpt-4.jsonl", encoding="utf-8") as fh:
        refs = {r["question_id"]: r["choices"][0]["turns"] for r in map(json.loads, filter(str.strip, fh))}
    if quick is not None:
        by_category: dict[str, list[dict]] = {}
        for row in rows:
            by_category.setdefault(row["category"], []).append(row)
        keep = {
            row["question_id"]
            for group in by_category.values()
            for row in sorted(group, key=lambda r: _rank(seed, str(r["question_id"])))[:quick]
        }
        rows = [r for r in rows if r["question_id"] in keep]
    questions = tuple(
        Question(str(r["question_id"]), r["category"], tuple(r["turns"]),
                 tuple(refs[r["question_id"]]) if r["question_id"] in refs else None)
        for r in rows
    )
    return QuestionSet(MTBENCH, questions, data_dir / "judge_prompts.jsonl")


def leaf_set(leaf, judge_prompts: Path) -> QuestionSet:
    """A skill leaf's seed questions, each judged against its seed answer.

    A grounded skill's question is asked with its context before it, as
    InstructLab's branch benchmark does.
    """
    questions = tuple(
        Question(
            f"{leaf.name}#{i}",
            BRANCH_CATEGORY,
            (f"{ex.context}\n\n{ex.question}" if ex.context else ex.question,),
            (ex.answer,),
        )
        for i, ex in enumerate(leaf.examples)
    )
    return QuestionSet(leaf.name, questions, judge_prompts)


def sample_leaves(leaves: list, count: int, seed: int = 0) -> list:
    """A fixed sample of `count` leaves: the same ones every run while they exist."""
    return sorted(leaves, key=lambda leaf: _rank(seed, leaf.name))[:count]
