"""`lab-hooks eval` end to end with the real embedded model as base, candidate and judge.

Branch questions only, short answers and judgments (MT-Bench with the real model
is test_eval_mtbench_embedded.py). The point here is the real path (generation,
prefilled judging, store, JSON, markdown), identical numbers on a rerun, and the cache.
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


def run(tmp_path, name, candidate, store, capsys, outputs=("--results", "{json}")):
    """The results file and what was printed; `outputs` are the output flags ({json}, {md}: files)."""
    leaf = tmp_path / "compositional_skills" / "arithmetic" / "qna.yaml"
    leaf.parent.mkdir(parents=True, exist_ok=True)
    leaf.write_text(LEAF)
    out = tmp_path / f"{name}.json"
    argv = ["--base-model", EMBEDDED, "--candidate", candidate, "--no-mtbench", "--max-tokens", "12",
            "--judge-max-tokens", "12", "--resamples", "2000", "--new-leaves", str(leaf),
            "--store", str(tmp_path / store), *(a.format(json=out, md=tmp_path / f"{name}.md") for a in outputs)]
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_embedded_branch_eval_deterministic_and_cached(tmp_path, candidate, capsys):
    first, markdown = run(tmp_path, "first", candidate, "store-a", capsys)  # --format text: the report printed
    assert first["judge"]["smoke_test"] is True and "**Smoke-test judge.**" in markdown
    (leaf,) = first["branch"]["leaves"]
    assert leaf["change"] == "new" and leaf["n_questions"] == 5
    for role in ("base", "candidate"):
        assert leaf["errors"][role]["judgments"] == 5
        assert leaf[role] is None or 1 <= leaf[role] <= 10
    steps = {row["step"]: row for row in first["timings"]["steps"]}
    assert steps["base answers"]["tokens_per_s"] > 0 and not steps["base answers"]["cached"]

    # A fresh store, same inputs and seed: everything recomputed, identical numbers.
    again, printed = run(tmp_path, "again", candidate, "store-b", capsys, ("--results", "{json}", "--format", "json"))
    assert json.loads(printed) == again
    # The first store again: every answer and judgment is cached; no model is even loaded.
    # The old spellings, hidden aliases for one release: --json FILE, --markdown FILE (instead of stdout).
    cached, printed = run(tmp_path, "cached", candidate, "store-a", capsys, ("--json", "{json}", "--markdown", "{md}"))
    assert printed == "" and "**Smoke-test judge.**" in (tmp_path / "cached.md").read_text()
    assert not any(row["step"].startswith("load ") for row in cached["timings"]["steps"])
    assert all(row["cached"] for row in cached["timings"]["steps"] if "cached" in row)
    for results in (first, again, cached):
        results.pop("timings")
    assert again == first and cached == first
