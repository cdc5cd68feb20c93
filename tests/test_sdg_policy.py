"""Whether judge steps filter, and what a leaf's report shows of its dropped samples (no model)."""

from __future__ import annotations

import json

import pytest

from lab_hooks.report.comment import render_comment
from lab_hooks.sdg.policy import judge_policy, keep_rule, sample_examples

EMBEDDED = "embedded:smollm2-135m-instruct"


def test_the_embedded_teacher_only_records_its_verdicts_unless_told_to_apply_them():
    auto = judge_policy(EMBEDDED)
    assert not auto.applied and "too small to judge" in auto.reason and EMBEDDED in auto.reason
    assert not judge_policy("hf:smollm2-135m-instruct").applied  # however it is loaded
    assert judge_policy(EMBEDDED, "apply").applied
    assert judge_policy("openai:http://127.0.0.1:9/v1#big-teacher") == judge_policy(EMBEDDED, "apply")
    assert not judge_policy("openai:http://127.0.0.1:9/v1#big-teacher", "record").applied
    with pytest.raises(ValueError, match="expected one of auto, apply, record"):
        judge_policy(EMBEDDED, "sometimes")
    assert (keep_rule({"equals": 1}), keep_rule({"min": 2})) == ("= 1", ">= 2")


def record(unit, status, fields, trace, dropped_by=None):
    return {"unit": unit, "status": status, "dropped_by": dropped_by, "fields": fields, "trace": trace}


RECORDS = [
    record("0.0", "dropped", {"seed_question": "q"}, [{"step": "questions", "raw": "Hi", "verdict": "unparseable"}],
           "questions"),
    record("0.1", "dropped", {"question": "Write a haiku about snow."},
           [{"step": "questions", "verdict": "kept"},
            {"step": "dedup", "verdict": "rejected", "reason": "ROUGE-L 0.91 >= 0.7", "of": "Write a haiku on snow."}],
           "dedup"),
    record("1.0", "dropped", {"question": "Write a haiku about rain.", "answer": "Rain."},
           [{"step": "response_judge", "score": 1, "verdict": "rejected", "reason": "score 1, kept only >= 2"}],
           "response_judge"),
    record("1.1", "dropped", {"question": "Write a haiku about fog.", "answer": "x" * 1000},
           [{"step": "response_judge", "score": 1, "verdict": "rejected", "reason": "score 1, kept only >= 2"}],
           "response_judge"),
    record("2.0", "accepted", {"question": "Write a haiku about wind.", "answer": "Wind."}, []),
]


def test_examples_show_one_dropped_sample_per_filter_first_each_with_why(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    shown = sample_examples(path, k=3)
    assert shown["accepted"] == [{"question": "Write a haiku about wind.", "answer": "Wind."}]
    assert [d["dropped_by"] for d in shown["dropped"]] == ["questions", "dedup", "response_judge"]
    unparsed, duplicate, judged = shown["dropped"]
    assert unparsed["reason"] == "the teacher's output could not be parsed: 'Hi'"
    assert duplicate["reason"] == "ROUGE-L 0.91 >= 0.7 of 'Write a haiku on snow.'"
    assert judged == {"question": "Write a haiku about rain.", "answer": "Rain.", "dropped_by": "response_judge",
                      "reason": "score 1, kept only >= 2"}
    assert len(sample_examples(path, k=5)["dropped"][3]["answer"]) == 401  # long fields are cut, marked with …
    assert sample_examples(tmp_path / "missing.jsonl") == sample_examples(None) == {"accepted": [], "dropped": []}


def test_a_leaf_that_kept_nothing_shows_the_contributor_why_in_the_comment(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:4]))
    leaf = {"leaf": "writing/haiku", "candidates": 4, "accepted": 0, "dropped": {"response_judge": 2},
            "status": "all samples filtered out: step 'response_judge' kept 0 of 2",
            "judges": {"applied": True, "reason": ""}, "examples": sample_examples(path)}
    run = {"status": "failed", "failure": {"stage": "generate", "reason": "no changed leaf produced any sample"},
           "generation": {"teacher": EMBEDDED, "leaves": [leaf]}}
    body = render_comment(run)
    assert "Generation kept no sample for `writing/haiku`" in body
    assert "<details open><summary>Generated samples: 0 accepted, 3 dropped (with why)</summary>" in body
    assert "dropped by `dedup`: ROUGE-L 0.91 &gt;= 0.7 of 'Write a haiku on snow.'" in body
    assert "the teacher's output could not be parsed" in body and "Write a haiku about rain." in body
    assert "Judge filtering was not applied" not in body
    leaf["judges"] = judge_policy(EMBEDDED).as_dict()
    assert f"Judge filtering was not applied: the teacher `{EMBEDDED}`" not in render_comment(run)
    assert "⚠️ Judge filtering was not applied: the teacher embedded:smollm2" in render_comment(run)
    for bad in ("not a mapping", {"dropped": "nor a list"}, {"dropped": ["nor samples"]}):  # a results.json from
        leaf.update(examples=bad, judges=["not", "a", "mapping"])  # anywhere renders, it never crashes
        assert "Generated samples:" not in render_comment(run)
