"""The whole loop on the embedded model, tiny settings: promote main once, run a PR
(generate → train with replay → MT-Bench quick + branch eval → comment), rerun it from
the store, then merge and promote (the candidate is adopted, no compute)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pr_repos import commit, git, init_repo, leaf_files

from lab_hooks.loop.pr import run_pr
from lab_hooks.loop.promote import promote
from lab_hooks.loop.run import PrOptions
from lab_hooks.report.comment import MARKER
from lab_hooks.store import Store
from lab_hooks.train.config import TrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

HAIKU = "compositional_skills/writing/freeform/haiku"
LIMERICKS = "compositional_skills/writing/freeform/limericks"
LIMERICK_SEEDS = [
    ("Write a limerick about a cat who plays the piano.", "A cat with a taste for the keys\nplayed Chopin with consummate ease."),
    ("Compose a limerick about a forgetful wizard.", "A wizard who lived in the Dales\nkept forgetting the words to his spells."),
    ("I need a limerick about Monday mornings.", "On Mondays the coffee runs thin\nand the inbox is bursting within."),
    ("Give me a limerick about a giant pumpkin.", "A gardener grew, to his shock,\na pumpkin the size of a rock."),
    ("Please write a limerick about a dancing robot.", "A robot was keen on the tango\nbut moved like a crate full of mango."),
]
TINY = dict(samples_per_seed=2, sdg_max_tokens=24, quick=1, progress=False,
            train=TrainConfig(max_steps=2, batch_size=4, warmup_steps=1, max_seq_len=256, max_tokens=512),
            eval={"max_tokens": 8, "judge_max_tokens": 12, "resamples": 2000, "unchanged_sample": 1,
                  "calibration_questions": 5})


@pytest.fixture(scope="module")
def loop(module_tmp, embedded_model_dir):
    tmp = module_tmp
    repo = init_repo(tmp / "repo", leaf_files(HAIKU, "Write haiku on everyday scenes."))
    store = Store(tmp / "store")
    first = promote(str(repo), "main", store=store, options=PrOptions(**TINY))
    git(repo, "checkout", "-qb", "pr")
    head = commit(repo, leaf_files(LIMERICKS, "Write limericks.", LIMERICK_SEEDS), "add limericks")
    git(repo, "checkout", "-q", "main")
    # `--nproc 2`: the PR's training runs under torchrun, FSDP2 over two gloo processes (the
    # runner's setting); the key ignores it (TrainConfig.identity), so reruns are cached either way.
    two = {**TINY, "train": replace(TINY["train"], nproc=2)}
    run = run_pr(PrOptions(repo=str(repo), base="main", head="pr", pr=3, out_dir=str(tmp / "out"), **two), store)
    return {"tmp": tmp, "repo": repo, "store": store, "first": first, "run": run, "head": head}


def test_first_promotion_trains_main_from_all_leaves(loop):
    assert loop["first"]["action"] == "retrained"
    store = loop["store"]
    assert store.get(store.get_ref("main/checkpoint")) is not None
    assert list(store.record_get(store.get_ref("main/replay"))["leaves"]) == [HAIKU]


def test_pr_run_reports_every_stage(loop):
    run = loop["run"]
    assert run["status"] == "ok", run.get("failure")
    assert [s["name"] for s in run["stages"]] == ["diff", "validate", "generate", "train", "evaluate"]
    assert all(s["seconds"] >= 0 for s in run["stages"])
    [leaf] = run["generation"]["leaves"]
    assert leaf["leaf"] == LIMERICKS and leaf["candidates"] >= leaf["accepted"] > 0
    [phase] = run["training"]["phases"]
    assert phase["phase"] == 2 and phase["new_samples"] == leaf["accepted"]
    assert phase["replay_samples"] > 0  # replay from main's haiku data
    assert phase["world_size"] == 2  # trained under torchrun; evaluated below from its exported HF dir
    assert run["mtbench"]["quick"] == 1 and len(run["mtbench"]["categories"]) == 8
    assert run["mtbench"]["smoke_judge"] is True
    # Both checkpoints are store artifacts, known by their keys: neither is hashed again.
    models = run["eval_results"]["models"]
    assert models["base"] == {"spec": models["base"]["spec"], "id": run["models"]["base_checkpoint"],
                              "id_source": "caller"}
    assert models["candidate"]["id"] == run["models"]["candidate_checkpoint"]
    assert loop["store"].get_ref("main/checkpoint") == run["models"]["base_checkpoint"]
    assert any(l["leaf"] == LIMERICKS for l in run["branch"]["leaves"])
    from lab_hooks.report.comment import render_comment

    # The judge-free metric on the PR's leaf (its five seeds all went into generation) and main's haiku leaf.
    leaves = {row["path"]: row for row in run["leaves"]}
    assert leaves[LIMERICKS]["changed"] and not leaves[HAIKU]["changed"]
    assert leaves[LIMERICKS]["reference_nll"]["n_answers"] == 5 and not leaves[LIMERICKS]["reference_nll"]["held_out"]
    assert leaves[HAIKU]["reference_nll"]["beyond_controls"]["controls"] == []
    assert run["training"]["replay_samples"] == phase["replay_samples"] > 0
    # The embedded judge rated the calibration set, cannot separate references from degraded answers: no verdict.
    calibration = run["judge"]["calibration"]
    assert calibration["n"] == 5 and calibration["passed"] is False
    assert run["mtbench"]["overall"]["verdict"] == "not drawn"
    assert run["judge"]["scoring"] == "logprob"
    body = render_comment(run)
    for heading in ("What the PR's leaves teach", "Regressions on control leaves", "Synthetic data", "Training",
                    "MT-Bench (judge failed calibration", "Judged branch evaluation"):
        assert f"### {heading}" in body
    assert body.startswith(MARKER)


def test_second_run_is_served_from_the_store(loop):
    again = PrOptions(repo=str(loop["repo"]), base="main", head="pr", pr=3, out_dir=str(loop["tmp"] / "again"), **TINY)
    rerun = run_pr(again, loop["store"])
    assert rerun["status"] == "ok" and rerun["generation"]["teacher_calls"] == 0
    stages = {s["name"]: s for s in rerun["stages"]}
    assert stages["generate"]["status"] == stages["train"]["status"] == stages["evaluate"]["status"] == "cached"
    assert all(row["cached"] for row in rerun["eval_results"]["timings"]["steps"] if "cached" in row)
    assert rerun["mtbench"] == loop["run"]["mtbench"]  # same inputs and seed: identical numbers


def test_a_leaf_that_keeps_nothing_gets_a_report_with_its_dropped_samples(loop):
    """One teacher token per question can never make a question of three words: every
    candidate is dropped by the `questions` parser, on any machine. The run stops at
    generate with the contributor's answer (what was dropped, and why), not a crash."""
    starved = {**TINY, "sdg_max_tokens": 1}
    run = run_pr(PrOptions(repo=str(loop["repo"]), base="main", head="pr", out_dir=str(loop["tmp"] / "starved"),
                           **starved), loop["store"])
    assert run["status"] == "failed" and run["failure"]["stage"] == "generate"
    assert "internal error" not in run["failure"]["reason"] and LIMERICKS in run["failure"]["reason"]
    [leaf] = run["generation"]["leaves"]
    assert leaf["accepted"] == 0 and leaf["dropped"] == {"questions": leaf["candidates"]} and leaf["candidates"] == 10
    dropped = leaf["examples"]["dropped"]
    assert len(dropped) == 3 and all(d["dropped_by"] == "questions" for d in dropped)
    assert all(d["reason"].startswith("the teacher's output could not be parsed") for d in dropped)
    from lab_hooks.report.comment import render_comment

    body = render_comment(run)
    assert f"Generation kept no sample for `{LIMERICKS}`" in body and "could not be parsed" in body
    assert "<details open><summary>Generated samples: 0 accepted, 3 dropped (with why)</summary>" in body


def test_merge_then_promote_adopts_the_candidate(loop):
    repo, store = loop["repo"], loop["store"]
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge PR #3", "pr")
    result = promote(str(repo), "main", store=store, options=PrOptions(**TINY))
    assert result["action"] == "adopted" and result["pr"] == 3
    assert store.get_ref("main/checkpoint") == loop["run"]["models"]["candidate_checkpoint"]
    assert sorted(store.record_get(store.get_ref("main/replay"))["leaves"]) == [HAIKU, LIMERICKS]
