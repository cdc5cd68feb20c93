"""The leaf schemas: valid JSON Schema 2020-12, found at run time, and matching
InstructLab's accept/reject rules on small hand-made cases (the corpus test
checks them on 2,115 real files)."""

import json

import pytest
from jsonschema import Draft202012Validator

from lab_hooks.checks.jsonschema_lite import iter_errors
from lab_hooks.checks.schema import load_schema, schema_dir


def test_every_schema_is_valid_2020_12():
    files = sorted(schema_dir().glob("v*/*.json"))
    assert {f"{f.parent.name}/{f.stem}" for f in files} == {
        "v1/compositional_skills", "v2/compositional_skills", "v3/compositional_skills",
        "v1/foundational_skills", "v2/foundational_skills", "v3/foundational_skills", "v3/knowledge"}
    for f in files:
        schema = json.loads(f.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def skill(version, seeds):
    return {"version": version, "created_by": "me", "task_description": "t",
            "seed_examples": [{"question": f"q{i}", "answer": "a"} for i in range(seeds)]}


def knowledge(contexts=5, qnas=3, **extra):
    return {"version": 3, "created_by": "me", "domain": "d", "document_outline": "o",
            "document": {"repo": "https://x/y", "commit": "c", "patterns": ["*.md"]},
            "seed_examples": [{"context": f"c{i}", "questions_and_answers": [
                {"question": f"q{i}{j}", "answer": "a", **extra} for j in range(qnas)]} for i in range(contexts)]}


def errors(version, tree, data):
    return sorted({e.keyword for e in iter_errors(load_schema(version, tree), data)})


@pytest.mark.parametrize("version, tree, data, expected", [
    (1, "compositional_skills", {k: v for k, v in skill(1, 1).items() if k != "version"}, []),
    (1, "compositional_skills", skill(1, 0), ["minItems"]),
    (2, "compositional_skills", skill(2, 4), ["minItems"]),
    (3, "compositional_skills", skill(3, 5), []),
    (3, "compositional_skills", {**skill(3, 5), "extra": 1}, ["unevaluatedProperties"]),
    (3, "compositional_skills", {**skill(3, 4), "seed_examples": skill(3, 4)["seed_examples"] * 2}, ["uniqueItems"]),
    (3, "compositional_skills", {**skill(3, 5), "task_description": ""}, ["minLength"]),
    (1, "compositional_skills", {**skill(1, 1), "task_description": ""}, []),  # v1 allowed an empty description
    (3, "foundational_skills", skill(3, 5), []),
    (3, "knowledge", knowledge(), []),
    (3, "knowledge", knowledge(contexts=4), ["minItems"]),
    (3, "knowledge", knowledge(qnas=2), ["minItems"]),
    (3, "knowledge", knowledge(note="x"), []),  # InstructLab's schema lets Q&A items carry other keys
    (3, "knowledge", {**knowledge(), "task_description": "t"}, ["unevaluatedProperties"]),
])
def test_instructlab_rules(version, tree, data, expected):
    assert errors(version, tree, data) == expected


def test_knowledge_before_version_3_has_no_schema():
    assert load_schema(1, "knowledge") is None and load_schema(2, "knowledge") is None
