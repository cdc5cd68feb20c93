"""The loop's own logic, with small deterministic stages (tests/loop_doubles.py) on real git
repositories and a real store: caching, a failing stage, a rerun after kill -9, promotion
order, a promotion racing a PR run, a deleted leaf. Seconds, not minutes: the stages
themselves are tested on real models elsewhere (test_pr_e2e runs the whole loop on one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loop_doubles import Doubles
from pr_repos import SEEDS, commit, git, init_repo, leaf_files

from lab_hooks.loop.candidate import candidate_key, taxonomy_fingerprint
from lab_hooks.loop.pr import run_pr
from lab_hooks.loop.promote import PromoteError, promote
from lab_hooks.loop.report import write_report
from lab_hooks.loop.run import PrOptions
from lab_hooks.report.comment import render_comment
from lab_hooks.report.results import problem, schema_id
from lab_hooks.store import Store
from lab_hooks.train.replay import read_main

HAIKU = "compositional_skills/writing/freeform/haiku"
ODES = "compositional_skills/writing/freeform/odes"
SONNETS = "compositional_skills/writing/freeform/sonnets"
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def world(tmp_path):
    """main (haiku) promoted once with the doubles; branches `odes` and `sonnets` each add a leaf."""
    repo = init_repo(tmp_path / "repo", poems("haiku"))
    store = Store(tmp_path / "store")
    doubles = Doubles()
    assert promote(str(repo), "main", store=store, options=quiet(), stages=doubles.stages())["action"] == "retrained"
    for branch in ("odes", "sonnets"):
        git(repo, "checkout", "-qb", branch, "main")
        commit(repo, poems(branch), f"add {branch}")
    git(repo, "checkout", "-q", "main")
    return {"repo": repo, "store": store, "tmp": tmp_path}


def poems(form: str) -> dict[str, str]:
    """A leaf asking for `form` poems (its own questions: no duplicate across leaves)."""
    return leaf_files(f"compositional_skills/writing/freeform/{form}", f"Write {form}.",
                      [(q.replace("haiku", form), a) for q, a in SEEDS])


def quiet(**kw) -> PrOptions:
    return PrOptions(progress=False, **kw)


def pr(world, head: str, doubles: Doubles, number: int = 1, out: str = "out") -> dict:
    return run_pr(quiet(repo=str(world["repo"]), base="main", head=head, pr=number,
                        out_dir=str(world["tmp"] / out)), world["store"], doubles.stages())


def merge(world, branch: str) -> None:
    git(world["repo"], "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)


def statuses(run: dict) -> dict:
    return {s["name"]: s["status"] for s in run["stages"]}


def test_a_pr_run_records_every_stage_and_a_rerun_is_served_from_the_store(world):
    doubles = Doubles()
    run = pr(world, "odes", doubles)
    assert run["status"] == "ok", run.get("failure")
    assert statuses(run) == {"diff": "ok", "validate": "ok", "generate": "ok", "train": "ok", "evaluate": "ok"}
    assert [r["leaf"] for r in run["generation"]["leaves"]] == [ODES]
    assert run["models"]["base_checkpoint"] == read_main(world["store"]).checkpoint
    assert run["branch"]["leaves"][0]["change"] == "new"
    again = pr(world, "odes", doubles, out="again")
    assert statuses(again) == {"diff": "ok", "validate": "ok", "generate": "cached", "train": "cached",
                               "evaluate": "cached"}
    assert again["models"]["candidate_checkpoint"] == run["models"]["candidate_checkpoint"]
    comment = write_report(run, world["tmp"] / "report", progress=False)
    written = json.loads((world["tmp"] / "report" / "results.json").read_text())
    assert written["$schema"] == schema_id() and problem(written) is None  # the contract the comment job checks
    assert statuses(written)["report"] == "ok"
    assert render_comment(written) == comment == (world["tmp"] / "report" / "comment.md").read_text()


@pytest.mark.parametrize("stage", ["generate", "train", "evaluate"])
def test_a_failing_stage_stops_the_run_and_says_which(world, stage):
    doubles = Doubles(fail=stage)
    run = pr(world, "odes", doubles)
    assert run["status"] == "failed"
    assert run["failure"]["stage"] == stage and f"{stage} double broke" in run["failure"]["reason"]
    assert list(statuses(run))[-1] == stage and statuses(run)[stage] == "failed"
    assert doubles.calls == ["generate", "train", "evaluate"][: doubles.calls.index(stage) + 1]
    assert world["store"].record_get(candidate_key(taxonomy_fingerprint(world["repo"], "odes"))) is None
    comment = write_report(run, world["tmp"] / "report", progress=False)
    assert f"Stage `{stage}` failed" in comment


def test_generation_without_any_sample_is_the_stage_s_own_verdict(world):
    run = pr(world, "odes", Doubles(empty=True))
    assert run["failure"]["stage"] == "generate"
    assert run["failure"]["reason"] == f"no changed leaf produced any accepted sample: {ODES}: all samples filtered out"
    assert run["generation"]["leaves"][0]["dropped"] == {"judge": 5}  # what it found is still reported
    assert "train" not in statuses(run)


def test_a_run_killed_during_training_reruns_to_the_same_end(world):
    started, release = world["tmp"] / "started", world["tmp"] / "never"
    script = f"""
import sys; sys.path.insert(0, {str(TESTS)!r})
from pathlib import Path
from loop_doubles import Doubles, pid_file_stage
from lab_hooks.loop.pr import run_pr
from lab_hooks.loop.run import PrOptions
from lab_hooks.store import Store
doubles = Doubles(during_train=pid_file_stage(Path({str(started)!r})), block_train=Path({str(release)!r}))
run_pr(PrOptions(repo={str(world['repo'])!r}, base="main", head="odes", progress=False,
                 out_dir={str(world['tmp'] / 'killed')!r}), Store({str(world['store'].home)!r}), doubles.stages())
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert started.exists(), "the run never reached training"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(world["store"].home)
    assert store.record_get(candidate_key(taxonomy_fingerprint(world["repo"], "odes"))) is None
    doubles = Doubles()
    run = pr(world, "odes", doubles)
    assert run["status"] == "ok"
    assert statuses(run)["generate"] == "cached" and statuses(run)["train"] == "ok"  # the kill left no half checkpoint
    assert store.verify() == []


def test_promotion_adopts_the_first_merge_and_retrains_the_second(world):
    doubles = Doubles()
    store = world["store"]
    start = read_main(store)
    odes, sonnets = pr(world, "odes", doubles, 1), pr(world, "sonnets", doubles, 2)
    merge(world, "odes")
    adopted = promote(str(world["repo"]), "main", store=store, options=quiet(), stages=doubles.stages())
    assert adopted["action"] == "adopted" and adopted["pr"] == 1
    assert read_main(store).checkpoint == odes["models"]["candidate_checkpoint"]
    merge(world, "sonnets")  # its candidate was trained from `start`, which lacks odes
    calls = len(doubles.calls)
    retrained = promote(str(world["repo"]), "main", store=store, options=quiet(), stages=doubles.stages())
    assert retrained["action"] == "retrained" and doubles.calls[calls:] == ["generate", "train"]
    main = read_main(store)
    assert main.checkpoint not in (sonnets["models"]["candidate_checkpoint"], start.checkpoint)
    assert sorted(main.buffer) == [HAIKU, ODES, SONNETS]
    trained_on = json.loads((store.get(main.checkpoint) / "trained-on.json").read_text())
    assert trained_on == {"new": [SONNETS], "replay": [HAIKU, ODES], "parent": odes["models"]["candidate_checkpoint"]}
    assert promote(str(world["repo"]), "main", store=store, stages=doubles.stages())["action"] == "current"


def test_a_candidate_records_the_checkpoint_it_trained_from_when_a_promotion_races_it(world):
    """A promotion lands while a PR trains: its candidate's parent is main as the run read it, so
    after the PR merges it is retrained on top of the new main, not adopted without it."""
    store = world["store"]
    start = read_main(store).checkpoint
    racer = Doubles()
    pr(world, "sonnets", racer, 2, out="racer")
    merge(world, "sonnets")

    def promotion_meanwhile():
        assert promote(str(world["repo"]), "main", store=store, options=quiet(),
                       stages=racer.stages())["action"] == "adopted"

    slow = Doubles(during_train=promotion_meanwhile)
    git(world["repo"], "checkout", "-q", "odes")
    git(world["repo"], "merge", "-q", "--no-edit", "main")  # the PR head is up to date with the new main
    git(world["repo"], "checkout", "-q", "main")
    run = pr(world, "odes", slow, 1)
    assert run["status"] == "ok" and run["models"]["base_checkpoint"] == start
    candidate = store.record_get(candidate_key(taxonomy_fingerprint(world["repo"], "odes")))
    assert candidate["parent"] == start != read_main(store).checkpoint
    merge(world, "odes")
    result = promote(str(world["repo"]), "main", store=store, options=quiet(), stages=Doubles().stages())
    assert result["action"] == "retrained"


def test_a_pr_that_only_deletes_a_leaf(world):
    doubles = Doubles()
    git(world["repo"], "checkout", "-qb", "drop", "main")
    commit(world["repo"], {f"{HAIKU}/qna.yaml": None, f"{HAIKU}/attribution.txt": None}, "drop haiku")
    git(world["repo"], "checkout", "-q", "main")
    run = pr(world, "drop", doubles)
    assert run["status"] == "ok" and list(statuses(run)) == ["diff", "validate"] and doubles.calls == []
    assert run["changed_leaves"] == [{"path": f"{HAIKU}/qna.yaml", "change": "deleted", "kind": "compositional_skills",
                                      "blob_sha": None, "old_path": f"{HAIKU}/qna.yaml"}]
    before = read_main(world["store"])
    merge(world, "drop")
    result = promote(str(world["repo"]), "main", store=world["store"], options=quiet(), stages=doubles.stages())
    after = read_main(world["store"])
    assert result["action"] == "retrained" and doubles.calls == []  # nothing to generate or train
    assert after.checkpoint == before.checkpoint and after.buffer == {}


def test_a_documents_only_change_is_a_new_taxonomy(tmp_path):
    knowledge = "knowledge/science/moons"
    leaf = ("version: 3\ncreated_by: t\ndomain: astronomy\ndocument_outline: Moons\ndocument:\n  repo: .\n"
            "  commit: HEAD\n  patterns:\n    - documents/luna.md\nseed_examples: []\n")
    repo = init_repo(tmp_path / "repo", {f"{knowledge}/qna.yaml": leaf, "documents/luna.md": "# Luna\n",
                                         "README.md": "taxonomy\n"})
    first = taxonomy_fingerprint(repo, "HEAD")
    commit(repo, {"README.md": "taxonomy, described\n"})
    assert taxonomy_fingerprint(repo, "HEAD") == first  # not the leaves' business
    commit(repo, {"documents/luna.md": "# Luna\nIt has no air.\n"})
    assert taxonomy_fingerprint(repo, "HEAD") != first  # the document a leaf learns from


def test_a_promotion_whose_training_fails_leaves_main_as_it_was(world):
    before = read_main(world["store"])
    merge(world, "odes")  # no PR run: promotion has to retrain
    with pytest.raises(PromoteError, match="stage train failed: internal error: RuntimeError: train double broke"):
        promote(str(world["repo"]), "main", store=world["store"], options=quiet(), stages=Doubles(fail="train").stages())
    assert read_main(world["store"]) == before
    assert promote(str(world["repo"]), "main", store=world["store"], options=quiet(),
                   stages=Doubles().stages())["action"] == "retrained"


def test_a_promotion_that_finds_main_moved_past_it_writes_nothing(world):
    """A later merge is promoted while an earlier one trains: the earlier one's switch finds main
    moved, starts over, finds main already contains its commit, and leaves main where it is."""
    store, repo = world["store"], world["repo"]
    merge(world, "odes")
    older = git(repo, "rev-parse", "HEAD")

    def later_promotion():
        merge(world, "sonnets")
        assert promote(str(repo), "main", store=store, options=quiet(), stages=Doubles().stages())["action"] == "retrained"

    slow = Doubles(during_train=later_promotion)
    result = promote(str(repo), older, store=store, options=quiet(), stages=slow.stages())
    newer_state = read_main(store)
    assert result == {"action": "current", "commit": newer_state.commit, "checkpoint": newer_state.checkpoint}
    assert newer_state.commit == git(repo, "rev-parse", "main") != older
    assert sorted(newer_state.buffer) == [HAIKU, ODES, SONNETS] and slow.calls == ["generate", "train"]
    assert promote(str(repo), older, store=store, stages=Doubles().stages())["action"] == "current"


def test_a_promotion_that_finds_main_moved_elsewhere_retrains_on_top_of_it(world):
    """Main moves to a commit without this one while it trains: it starts over from main's new
    checkpoint and buffer (its data is in the store already), never overwriting them."""
    store, repo = world["store"], world["repo"]
    other = []

    def other_promotion():
        if not other:  # only while the first attempt trains
            other.append(promote(str(repo), "odes", store=store, options=quiet(), stages=Doubles().stages()))

    racing = Doubles(during_train=other_promotion)
    result = promote(str(repo), "sonnets", store=store, options=quiet(), stages=racing.stages())
    main = read_main(store)
    assert other[0]["action"] == "retrained" and result["action"] == "retrained"
    assert racing.calls == ["generate", "train", "generate", "train"]
    assert main.commit == git(repo, "rev-parse", "sonnets") and sorted(main.buffer) == [HAIKU, ODES, SONNETS]
    trained_on = json.loads((store.get(main.checkpoint) / "trained-on.json").read_text())
    assert trained_on == {"new": [SONNETS], "replay": [HAIKU, ODES], "parent": other[0]["checkpoint"]}
