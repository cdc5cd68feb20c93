"""Parsers against the kinds of mess a small teacher really writes, and pipeline files."""

import pytest

from lab_hooks.sdg.parsers import get_parser, parse_answer, parse_context, parse_qa, parse_question, parse_yes_no
from lab_hooks.sdg.pipeline import PIPELINES, PipelineError, load_pipeline, parse_pipeline


@pytest.mark.parametrize("raw, expected", [
    ("What is the capital of France?", "What is the capital of France?"),
    ("New question: Write a haiku about autumn leaves.", "Write a haiku about autumn leaves."),
    ("**Question:** How do I boil an egg?\n**Answer:** Put it in water.", "How do I boil an egg?"),
    ('1. "Describe a rainy day in three lines."', "Describe a rainy day in three lines."),
    ("Question 2: Summarize the plot of Hamlet briefly.\nQuestion 3: another one?", "Summarize the plot of Hamlet briefly."),
    ("  Write a limerick about a cat\nthat likes to sleep all day.\n\nAnswer: There once...", "Write a limerick about a cat\nthat likes to sleep all day."),
])
def test_question(raw, expected):
    assert parse_question(raw) == {"question": expected}


@pytest.mark.parametrize("raw", ["", "   ", "Question:", "Yes.", "x" * 5000])
def test_question_unusable(raw):
    assert parse_question(raw) is None


def test_answer_stops_before_invented_question():
    assert parse_answer("Answer: Paris is the capital.\nQuestion: And Spain?") == {"answer": "Paris is the capital."}
    assert parse_answer("") is None


def test_context():
    assert parse_context("Passage: The meeting is on Monday at noon in room 4.\nQuestion: when?") == {
        "context": "The meeting is on Monday at noon in room 4."}


@pytest.mark.parametrize("raw, q, a", [
    ("Question: What year was the bridge built?\nAnswer: It was built in 1932.", "What year was the bridge built?", "It was built in 1932."),
    ("Q: Who designed the bridge?\nA: John Bradfield designed it.", "Who designed the bridge?", "John Bradfield designed it."),
    ("**Question 1:** How long is the bridge?\n\n**Answer 1:** About 1,149 m.", "How long is the bridge?", "About 1,149 m."),
    ("How tall is the arch of the bridge?\nThe arch is 134 m high.", "How tall is the arch of the bridge?", "The arch is 134 m high."),
])
def test_qa(raw, q, a):
    assert parse_qa(raw) == {"question": q, "answer": a}


@pytest.mark.parametrize("raw", ["Answer: 1932", "The bridge is nice.", "Question: What year?\nAnswer:"])
def test_qa_unusable(raw):
    assert parse_qa(raw) is None


@pytest.mark.parametrize("raw, allowed, score", [
    ("Score: 1", [0, 1], 1),
    ("score: [[0]]", [0, 1], 0),
    ("I would rate this 2/3 because it is fine.", [1, 2, 3], 2),
    ("**Rating**: 3", [1, 2, 3], 3),
    ("The answer is good. 3", [1, 2, 3], 3),
    ("Score: 5", [1, 2, 3], None),  # out of range is never clamped
    ("The question is good.", [0, 1], None),
    ("", [0, 1], None),
])
def test_scores(raw, allowed, score):
    parsed = get_parser({"score": allowed})(raw)
    assert (parsed and parsed["score"]) == score if score is not None else parsed is None


def test_yes_no():
    assert parse_yes_no("YES, it is supported.") == {"score": 1}
    assert parse_yes_no("no") == {"score": 0}
    assert parse_yes_no("maybe") is None


@pytest.mark.parametrize("name", PIPELINES)
def test_shipped_pipelines_load(name):
    pipeline = load_pipeline(name)
    assert pipeline.steps[0].type == "generate" and pipeline.steps[0].n == "samples_per_seed"
    assert any(s.type == "dedup" for s in pipeline.steps) and any(s.type == "judge" for s in pipeline.steps)


@pytest.mark.parametrize("text, message", [
    (b"steps: 3\noutput: {}", r"steps \(a list\)"),
    (b"steps:\n  - {name: a, type: magic}\noutput: {user: x, assistant: y}", "a type in"),
    (b"steps:\n  - {name: a, type: judge, parser: {score: [0, 1]}, prompt: {user: x}}\noutput: {user: x, assistant: y}", "keep"),
    (b"steps:\n  - {name: a, type: generate, parser: nope, prompt: {user: x}}\noutput: {user: x, assistant: y}", "unknown parser"),
])
def test_bad_pipelines(text, message):
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text, "bad")
