"""Several runners, one truth, end to end: two `lab-hooks pr` runs and one `lab-hooks promote`
in three processes against one PostgreSQL-backed store (a real server the suite starts), on
the embedded model with tiny settings. They end with a consistent main and no work done twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pr_repos import commit, git, init_repo, leaf_files
from test_pr_e2e import HAIKU, LIMERICK_SEEDS, LIMERICKS

from lab_hooks.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

SEASONS = "compositional_skills/writing/freeform/seasons"
SDG = ["--samples-per-seed", "1", "--sdg-max-tokens", "24", "--max-steps", "2"]
PR = [*SDG, "--quick", "1", "--answer-max-tokens", "8", "--judge-max-tokens", "8", "--unchanged-leaves", "0",
      "--no-progress", "--dry-run"]
REPO = Path(__file__).resolve().parents[1]


def lab_hooks(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lab_hooks", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=3000)
    assert proc.returncode == 0, f"{proc.args}: exit {proc.returncode}\n{err[-3000:]}"
    assert "built twice" not in err, err  # no artifact's work was done by two jobs
    return out


def computed(run: dict) -> list[tuple[str, str]]:
    """(what, key) for each piece of model work this PR run did itself rather than reuse."""
    models = run["models"]
    work = [("sdg", leaf["artifact"]) for leaf in run["generation"]["leaves"] if run["generation"]["teacher_calls"]]
    for row in run["eval_results"]["timings"]["steps"]:
        if row.get("cached") is False:
            role = row["step"].split()[0]
            work.append((row["step"], models["base_checkpoint" if role == "base" else "candidate_checkpoint"]))
    return work


def test_two_prs_and_a_promotion_on_three_runners_share_one_main(postgres_server, tmp_path, embedded_model_dir):
    url = f"{postgres_server.database()}?artifacts={tmp_path / 'shared'}"
    env = {**os.environ, "LAB_STORE_URL": url, "PYTHONPATH": str(REPO)}
    repo = init_repo(tmp_path / "repo", leaf_files(HAIKU, "Write haiku on everyday scenes."))
    assert "retrained" in finish(lab_hooks("promote", "--repo", str(repo), *SDG, env=env))
    first_main = Store(url).get_ref("main/checkpoint")

    git(repo, "checkout", "-qb", "pr-a")
    commit(repo, leaf_files(LIMERICKS, "Write limericks.", LIMERICK_SEEDS), "add limericks")
    git(repo, "checkout", "-qb", "pr-b", "main")
    commit(repo, leaf_files(SEASONS, "Write haiku about the seasons."), "add seasons")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge PR #2 (seasons)", "pr-b")
    main_sha = git(repo, "rev-parse", "main")

    # Runner 1 and runner 2 both got PR #1 (a re-run); runner 3 promotes the merge of PR #2.
    procs = [lab_hooks("pr", "--repo", str(repo), "--base", "main", "--head", "pr-a", "--out", str(tmp_path / f"out{n}"),
                       *PR, env=env) for n in (1, 2)]
    procs.append(lab_hooks("promote", "--repo", str(repo), *SDG, env=env))
    for proc in procs:
        finish(proc)

    store = Store(url)
    replay = store.record_get(store.get_ref("main/replay"))
    assert replay["commit"] == main_sha and sorted(replay["leaves"]) == [HAIKU, SEASONS]
    assert store.get_ref("main/checkpoint") not in (None, first_main)
    assert store.verify() == [] and store.garbage() == []
    runs = [json.loads((tmp_path / f"out{n}" / "results.json").read_text()) for n in (1, 2)]
    assert all(r["status"] == "ok" for r in runs), [r.get("failure") for r in runs]
    assert all(r["models"]["base_checkpoint"] in (first_main, store.get_ref("main/checkpoint")) for r in runs)
    work = [item for r in runs for item in computed(r)]
    assert len(work) == len(set(work))  # nothing computed by both runners
    assert sum(what == "sdg" for what, _ in work) == 1  # the PR's leaf: generated once
