"""The run store: keys, atomic artifacts, records, refs, gc, and real crashes."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab_hooks.store import Store, StoreBusy, StoreError, artifact_key, sha256_tree
from lab_hooks.store.cli import main as store_main
from store_writer import STEPS

WRITER = Path(__file__).with_name("store_writer.py")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def snapshot(store: Store) -> dict:
    """Everything a rerun must reproduce: artifacts with file hashes, records, refs."""
    db = store._db()
    files = sorted(db.execute("SELECT key, path, sha256, size FROM files"))
    arts = sorted(db.execute("SELECT key, kind, meta, size, nfiles FROM artifacts"))
    records = sorted(db.execute("SELECT key, value FROM records"))
    return {"artifacts": arts, "files": files, "records": records, "refs": store.refs()}


def writer(home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(WRITER), str(home), *extra],
                            stdout=subprocess.PIPE, text=True, env=env)


# -- keys ------------------------------------------------------------------

def test_artifact_key_is_canonical_and_sensitive():
    a = artifact_key("sdg", leaf="abc", seed=1, teacher={"model": "m", "temp": 0.7})
    assert a == artifact_key("sdg", teacher={"temp": 0.7, "model": "m"}, seed=1, leaf="abc")
    assert a != artifact_key("sdg", leaf="abc", seed=2, teacher={"model": "m", "temp": 0.7})
    assert a != artifact_key("train", leaf="abc", seed=1, teacher={"model": "m", "temp": 0.7})
    assert len(a) == 64
    with pytest.raises(TypeError, match=r"inputs\.path: PosixPath"):
        artifact_key("sdg", path=Path("/x"))
    with pytest.raises(ValueError, match="finite"):
        artifact_key("sdg", lr=float("nan"))


def test_sha256_tree_sees_renames_and_edits(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.yaml").write_text("x")
    first = sha256_tree(tmp_path / "p")
    (tmp_path / "p" / "a.yaml").rename(tmp_path / "p" / "b.yaml")
    second = sha256_tree(tmp_path / "p")
    (tmp_path / "p" / "b.yaml").write_text("y")
    assert len({first, second, sha256_tree(tmp_path / "p")}) == 3


# -- artifacts -------------------------------------------------------------

def test_build_registers_only_complete_artifacts(store):
    key = artifact_key("eval", n=1)
    assert store.get(key) is None
    with pytest.raises(RuntimeError):
        with store.build(key, kind="eval") as tmp:
            (tmp / "half.json").write_text("{")
            raise RuntimeError("crash in the middle")
    assert store.get(key) is None and store.garbage() == []

    with store.build(key, kind="eval", meta={"pr": 3}) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "scores.json").write_text('{"a": 1}')
    path = store.get(key)
    assert (path / "sub" / "scores.json").read_text() == '{"a": 1}'
    info = store.info(key)
    assert (info.kind, info.meta, info.nfiles, info.size) == ("eval", {"pr": 3}, 1, 8)
    assert (path / "sub" / "scores.json").stat().st_mode & 0o777 == 0o444  # immutable


def test_ensure_computes_once(store):
    calls = []

    def build(out):
        calls.append(1)
        (out / "x").write_text("x")

    key = artifact_key("data", leaf="a")
    assert store.ensure(key, build, kind="data") == store.ensure(key, build, kind="data")
    assert calls == [1]


def test_symlinks_and_bad_keys_are_refused(store, tmp_path):
    key = artifact_key("data", leaf="b")
    with pytest.raises(StoreError, match="link.txt is not a regular file"):
        with store.build(key, kind="data") as tmp:
            (tmp / "link.txt").symlink_to("/etc/passwd")
    assert store.get(key) is None
    with pytest.raises(StoreError, match="sha256 hex"):
        store.get("../../etc")


def test_different_keys_do_not_wait_same_key_does(store):
    k1, k2 = artifact_key("ckpt", n=1), artifact_key("ckpt", n=2)
    inside, release = threading.Event(), threading.Event()
    order = []

    def slow(out):
        inside.set()
        release.wait(10)
        order.append("k1 built")
        (out / "w").write_text("1")

    holder = threading.Thread(target=store.ensure, args=(k1, slow), kwargs={"kind": "ckpt"})
    holder.start()
    assert inside.wait(10)
    store.ensure(k2, lambda out: (out / "w").write_text("2"), kind="ckpt")  # does not wait for k1
    order.append("k2 built")
    waiter = threading.Thread(target=lambda: order.append(("k1 got", store.ensure(k1, slow, kind="ckpt").name)))
    waiter.start()
    time.sleep(0.2)
    assert order == ["k2 built"]  # the second k1 caller is waiting on the lock
    release.set()
    holder.join(10)
    waiter.join(10)
    assert order == ["k2 built", "k1 built", ("k1 got", k1)]


# -- records and refs ------------------------------------------------------

def test_records(store):
    keys = [artifact_key("sample", n=n) for n in range(1200)]
    store.record_put_many({k: {"n": n, "text": "é"} for n, k in enumerate(keys)})
    store.record_put("plain-key", [1, 2])
    assert store.record_get(keys[7]) == {"n": 7, "text": "é"}
    assert store.record_get("plain-key") == [1, 2] and store.record_get("absent") is None
    got = store.record_get_many(keys + ["absent"])
    assert len(got) == 1200 and got[keys[1199]]["n"] == 1199
    with pytest.raises(TypeError):
        store.record_put("k", {1, 2})
    assert pickle.loads(pickle.dumps(store)).record_get("plain-key") == [1, 2]  # for worker processes


def test_refs_swap_together_and_compare_and_swap(store):
    a, b = artifact_key("ckpt", n=1), artifact_key("replay", n=1)
    for k in (a, b):
        store.ensure(k, lambda out: (out / "f").write_text("x"), kind="k")
    store.set_refs({"main/checkpoint": a, "main/replay": b})
    assert store.refs("main/") == {"main/checkpoint": a, "main/replay": b}
    with pytest.raises(StoreError, match="no artifact or record"):
        store.set_refs({"main/checkpoint": b, "main/replay": artifact_key("missing")})
    assert store.get_ref("main/checkpoint") == a  # all or nothing
    with pytest.raises(StoreError, match="main/checkpoint moved"):
        store.set_refs({"main/checkpoint": b}, expect={"main/checkpoint": b})
    store.set_refs({"main/checkpoint": b}, expect={"main/checkpoint": a, "pr/1/x": None})
    assert store.get_ref("main/checkpoint") == b
    store.delete_refs("main/checkpoint")
    assert store.get_ref("main/checkpoint") is None


# -- verify and gc ---------------------------------------------------------

def test_verify_finds_corruption_and_fix_removes_it(store, capsys):
    key = artifact_key("data", n=9)
    path = store.ensure(key, lambda out: [(out / n).write_text(n) for n in "abc"], kind="data")
    home = ["--home", str(store.home)]
    assert store_main(home + ["verify"]) == 0
    store.record_put("r", 1)
    store.set_ref("main/data", key)
    capsys.readouterr()
    assert store_main(home + ["ls"]) == 0
    assert f"{key[:12]}  data" in capsys.readouterr().out
    assert store_main(home + ["ls", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["artifacts"][0]["refs"] == ["main/data"] and listing["records"] == 1
    (path / "a").chmod(0o644)
    (path / "a").write_text("A")  # same size, other content
    (path / "b").unlink()
    (path / "extra").write_text("")
    assert {(p.path, p.message) for p in store.verify()} == {
        ("a", "content changed (sha256 differs)"), ("b", "missing"), ("extra", "extra file, not in the manifest")}
    capsys.readouterr()
    assert store_main(home + ["verify", "--fix"]) == 1
    out = capsys.readouterr().out
    assert f"{key[:12]} a: content changed" in out and f"removed {key[:12]}" in out
    assert store.get(key) is None
    assert [p.message for p in store.verify()] == [
        "ref main/data names nothing in the store (rebuild it or delete the ref)"]
    assert store.ensure(key, lambda out: [(out / n).write_text(n) for n in "abc"], kind="data").is_dir()
    assert store_main(home + ["verify"]) == 0  # rebuilt under the same key: the ref is whole again


def test_gc_keeps_refs_recent_runs_and_recent_artifacts(store, capsys):
    def make(name):
        return store.ensure(artifact_key("x", name=name), lambda out: (out / "f").write_text(name), kind="x")

    referenced, used, loose, fresh = (make(n).name for n in ("referenced", "used", "loose", "fresh"))
    store.set_ref("main/checkpoint", referenced)
    with store.run("pr", {"pr": 1}) as run:
        run.use(used)
    store.record_put("old-record", 1)
    (store.tmp / f"{loose}.999.dead").mkdir()  # a crashed builder's leftovers
    db = store._db()
    db.execute("UPDATE artifacts SET created = created - 30 * 86400 WHERE key != ?", (fresh,))
    db.execute("UPDATE records SET created = created - 30 * 86400")

    assert store_main(["--home", str(store.home), "gc", "--dry-run"]) == 0
    assert "would delete 1 artifacts, 1 records, 0 runs, 1 unfinished dirs" in capsys.readouterr().out
    assert store.get(loose)
    report = store.gc()
    assert report.artifacts == [loose] and report.records == 1 and report.garbage_dirs
    assert store.get(loose) is None and all(store.get(k) for k in (referenced, used, fresh))
    db.execute("UPDATE runs SET started = started - 30 * 86400")
    assert store.gc().artifacts == [used] and store.gc().runs == 0
    assert store.get(referenced) and store.verify() == []


def test_gc_waits_for_no_job_and_a_killed_job_does_not_block_it(store, capsys):
    """A job (a pr or promote run) holds the store while it runs: gc refuses, in one
    line with exit 1, rather than delete what the job found but has not named yet."""
    loose = store.ensure(artifact_key("x", name="old cache"), lambda out: (out / "f").write_text("x"), kind="x").name
    store._db().execute("UPDATE artifacts SET created = created - 30 * 86400")
    job = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lab_hooks.store import Store\n"
         f"with Store({str(store.home)!r}).run('pr', {{'pr': 1}}):\n    print('ready', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert job.stdout.readline() == "ready\n"
        with pytest.raises(StoreBusy, match=r"a job \(pr, promote, generate, train, eval\) is using the store"):
            store.gc()
        assert store_main(["--home", str(store.home), "gc"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("lab-hooks store: ") and err.count("\n") == 1
        assert store.gc(dry_run=True).artifacts == [loose] and store.get(loose)  # looking is fine
        with store.run("promote"):  # jobs run beside each other
            pass
    finally:
        job.kill()
        job.wait()
    assert store.gc().artifacts == [loose]  # the kernel dropped the dead job's lock


def test_cli_reports_bad_home_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert store_main(["--home", str(tmp_path / "file" / "store"), "ls"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab-hooks store: ") and err.count("\n") == 1
    assert store_main(["bogus"]) == 2


# -- real processes --------------------------------------------------------

def finished(proc) -> bool:
    """The writer ran all its steps and exited cleanly."""
    lines = proc.communicate(timeout=120)[0].split("\n")
    return proc.returncode == 0 and lines[0] == "ready" and lines[-2:] == ["done", ""]


def test_two_processes_at_once_build_each_key_once(tmp_path):
    home, log, solo = tmp_path / "store", tmp_path / "builds.log", tmp_path / "solo"
    alone = writer(solo)  # the reference, in its own store
    procs = [writer(home, str(log)) for _ in range(2)]
    assert all(finished(p) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    builds = log.read_text().splitlines()
    kinds_steps = [" ".join(line.split()[:2]) for line in builds]
    assert len(kinds_steps) == len(set(kinds_steps)) == 80  # every key computed once, by one of them
    assert len({line.split()[2] for line in builds}) == 2  # and both did part of the work
    store = Store(home)
    assert store.verify() == [] and store.garbage() == []

    assert finished(alone)
    assert snapshot(store) == snapshot(Store(solo))


def test_kill_9_at_random_points_then_verify_and_rerun(tmp_path):
    home, clean = tmp_path / "store", tmp_path / "clean"
    uninterrupted = writer(clean)  # the reference, run meanwhile
    rng = random.Random(4)
    kills = interrupted_builds = 0
    for _ in range(24):
        proc = writer(home)
        assert proc.stdout.readline() == "ready\n"
        for _ in range(rng.randrange(STEPS)):  # a random step, then a random moment inside it
            proc.stdout.readline()
        time.sleep(rng.uniform(0, 0.01))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        store = Store(home)
        assert store.verify() == []
        interrupted_builds += bool(store.garbage())
        ckpt, replay = store.get_ref("main/checkpoint"), store.get_ref("main/replay")
        if ckpt or replay:  # the pair moves together, never a mix
            assert store.info(ckpt).meta == store.info(replay).meta
        store.close()
    assert kills >= 20 and interrupted_builds  # some kills landed inside a build

    assert finished(writer(home))
    store = Store(home)
    assert store.verify() == [] and store.garbage() == []
    assert finished(uninterrupted)
    assert snapshot(store) == snapshot(Store(clean))


def test_gc_keeps_what_live_items_depend_on(store):
    def make(name, deps=()):
        return store.ensure(artifact_key("x", name=name), lambda out: (out / "f").write_text(name),
                            kind="x", deps=deps).name

    data = make("sdg data")
    model = make("checkpoint", deps=[data])
    loose = make("loose")
    replay = artifact_key("replay", n=1)
    store.record_put(replay, {"leaves": {"a": model}}, deps=[model])
    store.set_refs({"main/replay": replay})
    db = store._db()
    db.execute("UPDATE artifacts SET created = created - 30 * 86400")
    db.execute("UPDATE records SET created = created - 30 * 86400")
    assert store.gc().artifacts == [loose]  # ref -> record -> checkpoint -> data, all kept
    assert store.get(model) and store.get(data) and store.verify() == []

    store.remove(data)  # a dependency gone: verify names it and who needs it
    assert [(p.key, p.message) for p in store.verify()] == [(data, f"missing, but {model[:12]} depends on it (rebuild it)")]
    make("sdg data")
    store.delete_refs("main/replay")
    db.execute("UPDATE artifacts SET created = created - 30 * 86400")
    report = store.gc()
    assert sorted(report.artifacts) == sorted([model, data]) and report.records == 1
    assert db.execute("SELECT count(*) FROM deps").fetchone()[0] == 0


def test_a_version_1_manifest_is_upgraded(tmp_path):
    import sqlite3

    Store(tmp_path / "s").close()
    db = sqlite3.connect(tmp_path / "s" / "manifest.sqlite")
    db.execute("DROP TABLE deps")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = Store(tmp_path / "s")
    store.record_put("r", 1, deps=["x"])
    assert store.gc().records == 0
    db = sqlite3.connect(tmp_path / "s" / "manifest.sqlite")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="manifest schema v99, this lab-hooks reads v2"):
        Store(tmp_path / "s")
