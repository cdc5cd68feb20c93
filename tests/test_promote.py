"""Promotion on merge: adopt the PR's candidate when main's leaves are the PR head's,
and switch main's checkpoint + replay buffer atomically (kill -9 at random points)."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest
from pr_repos import commit, git, init_repo, leaf_files

from lab_hooks.diff import diff_taxonomy, open_repo
from lab_hooks.loop.candidate import next_buffer, remember_candidate, taxonomy_fingerprint
from lab_hooks.loop.promote import adoptable, promote, switch
from lab_hooks.store import Store, artifact_key

HAIKU = "compositional_skills/writing/freeform/haiku"
ODES = "compositional_skills/writing/freeform/odes"


def artifact(store: Store, name: str) -> str:
    key = artifact_key("test", name=name)
    with store.build(key, kind="test", meta={"name": name}) as tmp:
        (tmp / "name").write_text(name)
    return key


@pytest.fixture
def merged(tmp_path):
    """main (haiku) promoted once; a PR adding odes ran and left its candidate; the PR merged."""
    repo = init_repo(tmp_path / "repo", leaf_files(HAIKU, "Write haiku on everyday scenes."))
    base = git(repo, "rev-parse", "HEAD")
    store = Store(tmp_path / "store")
    old = {"checkpoint": artifact(store, "main-ckpt"), "haiku": artifact(store, "haiku-data")}
    switch(store, old["checkpoint"], base, {"compositional_skills/writing/freeform/haiku": old["haiku"]},
           expect={"main/checkpoint": None, "main/replay": None})
    git(repo, "checkout", "-qb", "pr")
    head = commit(repo, leaf_files(ODES, "Write odes to ordinary things."), "add odes")
    new = {"checkpoint": artifact(store, "pr-ckpt"), "odes": artifact(store, "odes-data")}
    buffer = next_buffer({"compositional_skills/writing/freeform/haiku": old["haiku"]},
                         diff_taxonomy(repo, "main", "pr"), {"compositional_skills/writing/freeform/odes": new["odes"]})
    remember_candidate(store, open_repo(repo), head, new["checkpoint"], old["checkpoint"], buffer, pr=7)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge PR #7", "pr")
    return {"repo": repo, "store": store, "old": old, "new": new, "head": head, "base": base,
            "path": tmp_path / "store"}


def state(store: Store) -> tuple:
    replay = store.get_ref("main/replay")
    record = store.record_get(replay)
    return store.get_ref("main/checkpoint"), record["commit"], sorted(record["leaves"])


def test_fingerprint_is_the_leaves_trees_not_the_commit(merged):
    repo = open_repo(merged["repo"])
    main = repo.commit("main").hexsha
    assert main != merged["head"]  # a merge commit, yet the same leaves
    assert taxonomy_fingerprint(repo, main) == taxonomy_fingerprint(repo, merged["head"])
    assert taxonomy_fingerprint(repo, merged["base"]) != taxonomy_fingerprint(repo, main)


def test_merged_pr_candidate_is_adopted_with_its_buffer(merged):
    store = merged["store"]
    result = promote(str(merged["repo"]), "main", store=store)
    assert result["action"] == "adopted" and result["pr"] == 7
    checkpoint, commit_sha, data = state(store)
    assert checkpoint == merged["new"]["checkpoint"]
    assert commit_sha == git(merged["repo"], "rev-parse", "main")
    assert data == ["compositional_skills/writing/freeform/haiku", "compositional_skills/writing/freeform/odes"]
    assert promote(str(merged["repo"]), "main", store=store)["action"] == "current"


def test_candidate_from_an_older_main_is_not_adopted(merged):
    store = merged["store"]
    candidate = {"checkpoint": merged["new"]["checkpoint"], "parent": merged["old"]["checkpoint"]}
    assert adoptable(store, candidate, merged["old"]["checkpoint"])
    assert not adoptable(store, candidate, artifact(store, "someone-else-promoted"))  # main moved since the PR ran
    assert not adoptable(store, {**candidate, "checkpoint": "0" * 64}, merged["old"]["checkpoint"])  # gc'd
    assert not adoptable(store, None, merged["old"]["checkpoint"])


def test_deleted_modified_and_renamed_leaves_leave_the_buffer(tmp_path):
    a, b, c, d = (f"compositional_skills/writing/{x}" for x in "abcd")
    repo = init_repo(tmp_path / "repo", {**leaf_files(a, "A."), **leaf_files(b, "B."), **leaf_files(c, "C.")})
    git(repo, "checkout", "-qb", "pr")
    commit(repo, {f"{a}/qna.yaml": None, f"{b}/qna.yaml": leaf_files(b, "B, better.")[f"{b}/qna.yaml"]})
    git(repo, "mv", c, d)
    commit(repo, {}, "rename c to d")
    buffer = {a: "ka", b: "kb", c: "kc"}
    assert next_buffer(buffer, diff_taxonomy(repo, "main", "pr"), {b: "kb2", d: "kd"}) == {b: "kb2", d: "kd"}


def test_kill_9_during_promotion_leaves_old_or_new_never_a_mix(merged):
    store = merged["store"]
    repo, path = merged["repo"], merged["path"]
    old_state = state(store)
    old_refs = {"main/checkpoint": store.get_ref("main/checkpoint"), "main/replay": store.get_ref("main/replay")}
    script = ("import sys; from lab_hooks.loop.promote import promote; from lab_hooks.store import Store; "
              f"promote({str(repo)!r}, 'main', store=Store({str(path)!r}))")
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True)
    full = time.perf_counter() - began
    new_state = state(store)
    assert new_state != old_state and new_state[0] == merged["new"]["checkpoint"]
    rng = random.Random(9)
    for _ in range(20):
        store.set_refs(old_refs)  # back to the pre-merge state
        assert state(store) == old_state
        proc = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(rng.uniform(0.0, full * 1.2))
        proc.kill()
        proc.wait()
        assert state(store) in (old_state, new_state)  # checkpoint and buffer move together
        assert store.verify() == []
        subprocess.run([sys.executable, "-c", script], check=True)  # a rerun completes the switch
        assert state(store) == new_state


def age(store: Store, days: float = 30) -> None:
    """Make every artifact and record `days` old, as if made by runs long ago."""
    for table in ("artifacts", "records"):
        store.db.write(lambda tx: tx.execute(f"UPDATE {table} SET created = created - ?", (days * 86400,)))


def test_gc_keeps_what_main_and_a_waiting_candidate_need(merged):
    """main's buffer record keeps its data; a PR's candidate record keeps its checkpoint
    and data while it waits for the merge, even when those were made long before it."""
    store = merged["store"]
    age(store)
    loose = artifact(store, "loose")
    age(store)
    remember_candidate(store, open_repo(merged["repo"]), merged["head"], merged["new"]["checkpoint"],
                       merged["old"]["checkpoint"], store.record_get(store.get_ref("main/replay"))["leaves"] | {
                           "compositional_skills/writing/freeform/odes": merged["new"]["odes"]}, pr=7)
    report = store.gc()
    assert report.artifacts == [loose]  # only what nothing needs
    assert all(store.get(k) for k in (*merged["old"].values(), *merged["new"].values()))
    assert promote(str(merged["repo"]), "main", store=store)["action"] == "adopted"
    age(store)  # the old main and the adopted candidate's record are history now
    report = store.gc()
    assert report.artifacts == [merged["old"]["checkpoint"]] and report.records == 2  # old buffer, candidate
    assert all(store.get(k) for k in (*merged["new"].values(), merged["old"]["haiku"])) and store.verify() == []
