"""results.json's contract: a versioned JSON Schema in schemas/pr-results/, checked at run time by
our small evaluator (no `jsonschema` in the comment job) and here against the `jsonschema` library."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator
from test_report_comment import full_run

from lab_hooks.checks.jsonschema_lite import iter_errors
from lab_hooks.report.results import TYPES, problem, schema, schema_file, schema_id


def test_the_schema_is_versioned_and_valid_2020_12():
    assert schema_file().parent.name == "pr-results" and schema_file().name == "v2.json"
    assert schema_id() == "https://lab-hooks.dev/schemas/pr-results/v2.json"
    assert schema_file(1).is_file()  # the old version stays beside it
    Draft202012Validator.check_schema(schema())


BROKEN = [
    ("status", "maybe"), ("pr", "7"), ("stages", {"name": "diff"}), ("generation", []),
    ("mtbench", {"overall": {"ci": [1.0]}}), ("mtbench", {"overall": {"ci": [1, 2, 3]}}),
    ("training", {"phases": [{"phase": -1}]}), ("generation", {"leaves": [{"dropped": {"judge": "3"}}]}),
    ("generation", {"leaves": [{"accepted": -2}]}), ("base", {"sha": 12}), ("seeds", {"sdg": "zero"}),
    ("leaves", [{"reference_nll": {"ci": [0.1]}}]), ("leaves", [{"changed": "yes"}]),
    ("judge", {"calibration": {"passed": "no"}}), ("training", {"replay_samples": -1}),
    ("generation", {"leaves": [{"examples": {"dropped": [{"reason": 3}]}}]}),
]


@pytest.mark.parametrize("key, value", BROKEN)
def test_our_evaluator_fails_what_jsonschema_fails_at_the_same_place(key, value):
    run = copy.deepcopy(full_run())
    run[key] = value
    theirs = {tuple(e.absolute_path) for e in Draft202012Validator(schema()).iter_errors(run)}
    ours = {e.path for e in iter_errors(schema(), run, types=TYPES)}
    assert theirs and ours == theirs
    assert problem(run).startswith(f"at {key}")


def test_a_full_run_matches():
    assert problem(full_run()) is None
    assert not list(Draft202012Validator(schema()).iter_errors(full_run()))
