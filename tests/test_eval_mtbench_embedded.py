"""`lab-hooks eval` on MT-Bench with the real embedded model as base, candidates and judge.

The real path the CPU runner and `make demo` take: the pinned MT-Bench questions,
references and judge prompts, answers by transformers, the prefilled smoke-test judge,
the store, the results JSON (checked against its schema). Small: --quick 1 (8
questions x 2 turns), answers of 8 tokens, judgments of 6. The candidates are the
embedded weights under other checkpoint dirs (symlinked files plus a marker, so their
hashes differ): real, distinct model ids without copying 0.5 GB.
"""

import json
from pathlib import Path

import jsonschema
import pytest

import lab_hooks.eval as eval_pkg
from lab_hooks.eval.cli import main

pytestmark = pytest.mark.slow

BASE = "hf:smollm2-135m-instruct"  # the embedded weights, loaded under their own spec
JUDGE = "embedded:smollm2-135m-instruct"


def candidate(tmp_path, embedded_model_dir, name):
    folder = tmp_path / name
    folder.mkdir()
    for file in embedded_model_dir.iterdir():
        (folder / file.name).symlink_to(file)
    (folder / "candidate.txt").write_text(name)
    return f"hf:{folder}"


def evaluate(tmp_path, candidate_spec, name):
    out = tmp_path / f"{name}.json"
    argv = ["--base-model", BASE, "--candidate", candidate_spec, "--judge", JUDGE, "--quick", "1",
            "--max-tokens", "8", "--judge-max-tokens", "6", "--resamples", "2000",
            "--store", str(tmp_path / "store"), "--results", str(out)]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    schema = json.loads((Path(eval_pkg.__file__).parent / "results.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(results)
    return results, {row["step"]: row for row in results["timings"]["steps"]}


def test_mtbench_quick_on_the_embedded_model_then_a_second_pr_reuses_the_base(tmp_path, embedded_model_dir):
    first, steps = evaluate(tmp_path, candidate(tmp_path, embedded_model_dir, "pr1"), "pr1")
    assert first["judge"]["smoke_test"] is True and first["judge"]["prefill"] == "Rating: [["
    mt = first["mtbench"]
    assert len(mt["subset"]["question_ids"]) == 8 and len(mt["categories"]) == 8
    for role in ("base", "candidate"):
        errors = mt["errors"][role]
        assert errors["judgments"] == 16
        assert errors["rate"] <= 0.5, f"{role}: {errors} — the prefilled judge should mostly rate"
        assert 1 <= mt["overall"][role] <= 10
    assert {"load hf:smollm2-135m-instruct", "load " + JUDGE} <= set(steps)
    assert steps["base answers"]["tokens_per_s"] > 0 and not steps["base judgments"]["cached"]
    assert first["models"]["base"]["id_source"] == "pinned" and first["models"]["candidate"]["id_source"] == "files"

    second, steps = evaluate(tmp_path, candidate(tmp_path, embedded_model_dir, "pr2"), "pr2")
    assert "load " + BASE not in steps  # the base model is not even loaded
    assert steps["base answers"]["cached"] and steps["base judgments"]["cached"]
    assert not steps["candidate answers"]["cached"] and not steps["candidate judgments"]["cached"]
    assert second["models"]["candidate"]["id"] != first["models"]["candidate"]["id"]
    assert [q["base"] for q in second["mtbench"]["questions"]] == [q["base"] for q in mt["questions"]]
    # Same weights, greedy answers of the same model: the candidate's ratings match the first PR's.
    assert [q["candidate"] for q in second["mtbench"]["questions"]] == [q["candidate"] for q in mt["questions"]]
