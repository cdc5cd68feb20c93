"""`lab-hooks eval` end to end with the real embedded model as base, candidate and judge.

Small: one MT-Bench question per category, short answers and judgments. The
135M judge rarely writes a usable `[[rating]]`, which exercises the error
accounting; the point here is the real path (generation, judging, store,
JSON, markdown), identical numbers on a rerun, and the base cache.
"""

import json

import pytest

from lab_hooks.eval.cli import main

pytestmark = pytest.mark.slow

EMBEDDED = "embedded:smollm2-135m-instruct"
LEAF = """version: 2
task_description: Answer arithmetic questions.
created_by: someone
seed_examples:
""" + "".join(f"  - question: What is {i} plus {i}?\n    answer: {i} plus {i} is {2 * i}.\n" for i in range(1, 6))


@pytest.fixture(scope="module")
def candidate():
    """The embedded checkpoint under another spec: a second model id with real weights."""
    from lab_hooks.models.embedded import embedded_checkpoint

    return f"hf:{embedded_checkpoint()}"


def run(tmp_path, name, candidate, store, *extra):
    leaf = tmp_path / "compositional_skills" / "arithmetic" / "qna.yaml"
    leaf.parent.mkdir(parents=True, exist_ok=True)
    leaf.write_text(LEAF)
    out = tmp_path / f"{name}.json"
    argv = ["--base-model", EMBEDDED, "--candidate", candidate, "--quick", "1", "--max-tokens", "4",
            "--judge-max-tokens", "8", "--resamples", "2000", "--new-leaves", str(leaf),
            "--store", str(tmp_path / store), "--json", str(out), "--markdown", str(tmp_path / f"{name}.md"),
            *extra]
    assert main(argv) == 0
    return json.loads(out.read_text()), (tmp_path / f"{name}.md").read_text()


def test_embedded_end_to_end_and_cached(tmp_path, candidate):
    first, markdown = run(tmp_path, "first", candidate, "store")
    assert first["judge"]["smoke_test"] is True
    assert "**Smoke-test judge.**" in markdown and "### MT-Bench" in markdown
    mt = first["mtbench"]
    assert len(mt["questions"]) == 8
    for role in ("base", "candidate"):
        errors = mt["errors"][role]
        assert errors["judgments"] == 16
        valid = [r for q in mt["questions"] for turn in q[role] for r in turn if r is not None]
        assert len(valid) == 16 - errors["errors"]
        assert all(1 <= r <= 10 for r in valid)
    assert [leaf["change"] for leaf in first["branch"]["leaves"]] == ["new"]
    steps = {row["step"]: row for row in first["timings"]["steps"]}
    assert steps["base answers"]["tokens_per_s"] > 0 and not steps["base answers"]["cached"]

    # The same PR again: every answer and judgment comes from the store; no model is even loaded.
    cached, _ = run(tmp_path, "cached", candidate, "store")
    steps = [row["step"] for row in cached["timings"]["steps"]]
    assert not any(step.startswith("load ") for step in steps)
    assert all(row["cached"] for row in cached["timings"]["steps"] if "cached" in row)
    first.pop("timings"), cached.pop("timings")
    assert cached == first


def test_embedded_same_inputs_and_seed_give_identical_numbers(tmp_path, candidate):
    # Branch questions only (short judge prompts): fresh stores, so everything is recomputed.
    one, _ = run(tmp_path, "one", candidate, "store-one", "--no-mtbench")
    two, _ = run(tmp_path, "two", candidate, "store-two", "--no-mtbench")
    one.pop("timings"), two.pop("timings")
    assert one == two and one["branch"]["leaves"][0]["n_questions"] == 5
