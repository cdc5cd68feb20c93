"""Parsers that turn a teacher's raw text into fields, tolerant of small-model mess.

Each parser takes the completion text and returns a dict of fields, or None when
nothing usable is in it (the engine counts that as an "unparseable" rejection).
Pipelines name parsers by key in `PARSERS`.
"""

from __future__ import annotations

import re
from typing import Callable

# Labels a model tends to echo from our prompts, or invent, before the real content.
_LABEL = r"(?:new\s+|generated\s+|example\s+)?(?:question|query|instruction|prompt|q|answer|response|a|context|document|passage|text)"
_LEADING_LABEL = re.compile(rf"^\s*(?:\*\*|#+\s*)?{_LABEL}\s*(?:\d+\s*)?(?:\*\*)?\s*[:：]\s*(?:\*\*)?", re.I)
_LEADING_NUMBER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
_SECTION = {
    "question": re.compile(r"^\s*(?:\*\*|#+\s*)?(?:new\s+|generated\s+)?(?:question|query|q)\s*(?:\d+\s*)?(?:\*\*)?\s*[:：]", re.I | re.M),
    "answer": re.compile(r"^\s*(?:\*\*|#+\s*)?(?:answer|response|a)\s*(?:\d+\s*)?(?:\*\*)?\s*[:：]", re.I | re.M),
    "context": re.compile(r"^\s*(?:\*\*|#+\s*)?(?:new\s+|generated\s+)?(?:context|document|passage)\s*(?:\d+\s*)?(?:\*\*)?\s*[:：]", re.I | re.M),
}
_QUOTES = "\"'`“”‘’"
MIN_WORDS = 3
MAX_CHARS = 4000


def _clean(text: str) -> str:
    text = text.strip()
    for _ in range(3):  # "1. Question: **...**" peels in a few passes
        stripped = _LEADING_NUMBER.sub("", _LEADING_LABEL.sub("", text)).strip()
        if stripped == text:
            break
        text = stripped
    if len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip("* \n")


def _cut_before(text: str, *sections: str) -> str:
    """Text up to the first line that opens one of `sections` (after the first line)."""
    end = len(text)
    for name in sections:
        for m in _SECTION[name].finditer(text):
            if m.start() > 0:
                end = min(end, m.start())
                break
    return text[:end]


def _usable(text: str) -> bool:
    return len(text.split()) >= MIN_WORDS and len(text) <= MAX_CHARS


def parse_question(text: str) -> dict | None:
    """One question: drop labels and numbering, stop where an answer or a second question starts."""
    body = _SECTION["question"].sub("", text, count=1) if _SECTION["question"].match(text) else text
    body = _cut_before(body, "answer", "question", "context")
    question = _clean(body)
    return {"question": question} if _usable(question) else None


def parse_answer(text: str) -> dict | None:
    """One response: drop a leading "Answer:" label, stop before an invented follow-up question."""
    body = _SECTION["answer"].sub("", text, count=1) if _SECTION["answer"].match(text) else text
    answer = _clean(_cut_before(body, "question"))
    return {"answer": answer} if answer and len(answer) <= MAX_CHARS else None


def parse_context(text: str) -> dict | None:
    """One context passage (grounded skills): stop where the model starts asking questions."""
    body = _SECTION["context"].sub("", text, count=1) if _SECTION["context"].match(text) else text
    context = _clean(_cut_before(body, "question", "answer"))
    return {"context": context} if _usable(context) else None


def parse_qa(text: str) -> dict | None:
    """A question/answer pair: labelled sections in either order, or a question line then prose."""
    q = _SECTION["question"].search(text)
    a = _SECTION["answer"].search(text, q.end() if q else 0)
    if q and a:
        question = _clean(text[q.end():a.start()])
        answer = _clean(_cut_before(text[a.end():], "question"))
    else:
        first, _, rest = text.strip().partition("\n")
        if not first.rstrip().endswith("?"):
            return None
        question, answer = _clean(first), _clean(_cut_before(rest, "question"))
    if not (_usable(question) and answer):
        return None
    return {"question": question, "answer": answer}


_SCORE_LABEL = re.compile(r"(?:score|rating|grade|verdict)\s*(?:is|of|:|=)?\s*[\[\(\*\s]*(\d+)", re.I)
_FRACTION = re.compile(r"\b(\d+)\s*/\s*\d+\b")
_BARE = re.compile(r"(?<![\d.])(\d+)(?![\d.])")
_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def score_parser(allowed: list[int]) -> Callable[[str], dict | None]:
    """A parser for "Score: N"-style judgements; the first allowed number wins.

    Tried in order: a labelled score, an "N/M" fraction, then the first bare
    number. A number outside `allowed` is unparseable, never clamped.
    """
    allowed_set = set(allowed)

    def parse(text: str) -> dict | None:
        for pattern in (_SCORE_LABEL, _FRACTION, _BARE):
            m = pattern.search(text)
            if m:
                value = int(m.group(1))
                return {"score": value} if value in allowed_set else None
        return None

    return parse


def parse_yes_no(text: str) -> dict | None:
    """YES/NO judgements (faithfulness): 1 for yes, 0 for no, the first one said."""
    m = _YES_NO.search(text)
    return {"score": int(m.group(1).lower() == "yes")} if m else None


PARSERS: dict[str, Callable[[str], dict | None]] = {
    "question": parse_question,
    "answer": parse_answer,
    "context": parse_context,
    "qa": parse_qa,
    "yes_no": parse_yes_no,
}


def get_parser(spec: str | dict) -> Callable[[str], dict | None]:
    """`"question"`, or `{"score": [0, 1]}` for a judge that may say only those numbers."""
    if isinstance(spec, dict) and set(spec) == {"score"}:
        return score_parser([int(v) for v in spec["score"]])
    if isinstance(spec, str) and spec in PARSERS:
        return PARSERS[spec]
    raise ValueError(f"unknown parser {spec!r}; known: {sorted(PARSERS)} or {{score: [...]}}")
