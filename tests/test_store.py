"""The run store: keys, atomic artifacts, records, refs, gc, and real crashes.

Every store test runs on both backends (the `store_url` fixture, tests/conftest.py):
SQLite, and a real PostgreSQL server the suite starts itself, so both keep one behaviour.
"""

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

from lab_hooks.store import Store, StoreBusy, StoreCorrupt, StoreError, artifact_key, sha256_tree
from lab_hooks.store.cli import main as store_main
from store_writer import STEPS

WRITER = Path(__file__).with_name("store_writer.py")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(store_url):
    return Store(url=store_url)


def snapshot(store: Store) -> dict:
    """Everything a rerun must reproduce: artifacts with file hashes, records, refs."""
    files = sorted(tuple(r) for r in store.db.read("SELECT key, path, sha256, size FROM files"))
    arts = sorted(tuple(r) for r in store.db.read("SELECT key, kind, meta, size, nfiles FROM artifacts"))
    records = sorted(tuple(r) for r in store.db.read("SELECT key, value FROM records"))
    return {"artifacts": arts, "files": files, "records": records, "refs": store.refs()}


def age(store: Store, table: str, days: float = 30, where: str = "", params: tuple = ()) -> None:
    """Make rows of `table` `days` old, as if made long ago."""
    column = "started" if table == "runs" else "created"
    store.db.write(lambda tx: tx.execute(f"UPDATE {table} SET {column} = {column} - ? {where}",
                                         (days * 86400, *params)))


def writer(url: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(WRITER), url, *extra],
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


def test_a_held_lock_covers_the_build_of_its_key(store):
    """Check, compute, register under one lock (as training does): the build inside does not
    wait for the lock its own thread holds; anyone else still does."""
    key = artifact_key("checkpoint", n=3)
    with store.lock(key):
        assert store.get(key) is None
        with store.build(key, kind="checkpoint") as tmp:
            (tmp / "w").write_text("w")
        with Store(store.url).lock(key, blocking=False) as other:
            assert not other
    with Store(store.url).lock(key, blocking=False) as other:
        assert other
    assert (store.get(key) / "w").read_text() == "w"


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


def abc(out: Path) -> None:
    for name in "abc":
        (out / name).write_text(name)


def test_verify_finds_corruption_and_fix_removes_it(store, capsys):
    key = artifact_key("data", n=9)
    path = store.ensure(key, abc, kind="data")
    where = ["--url", store.url]
    assert store_main(where + ["verify"]) == 0
    store.record_put("r", 1)
    capsys.readouterr()
    assert store_main(where + ["ls"]) == 0
    assert f"{key[:12]}  data" in capsys.readouterr().out
    assert store_main(where + ["ls", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["artifacts"][0]["refs"] == [] and listing["records"] == 1
    (path / "a").chmod(0o644)
    (path / "a").write_text("A")  # same size, other content
    (path / "b").unlink()
    (path / "extra").write_text("")
    assert {(p.path, p.message) for p in store.verify()} == {
        ("a", "content changed (sha256 differs)"), ("b", "missing"), ("extra", "extra file, not in the manifest")}
    capsys.readouterr()
    assert store_main(where + ["verify", "--fix"]) == 1
    out = capsys.readouterr().out
    assert f"{key[:12]} a: content changed" in out and f"removed {key[:12]}" in out
    assert store.get(key) is None and store.verify() == []
    assert store.ensure(key, abc, kind="data").is_dir()  # rebuilt under the same key
    assert store_main(where + ["verify"]) == 0


def test_verify_fix_keeps_what_a_ref_names_and_says_so(store, capsys):
    """Removing main's checkpoint would fail every later PR and promote: --fix reports it instead."""
    key = artifact_key("checkpoint", n=1)
    path = store.ensure(key, abc, kind="checkpoint")
    store.set_refs({"main/checkpoint": key, "pr/3/checkpoint": key})
    (path / "a").chmod(0o644)
    (path / "a").write_text("A")
    where = ["--url", store.url]
    capsys.readouterr()
    assert store_main(where + ["verify", "--fix"]) == 1
    out = capsys.readouterr().out
    assert f"kept {key[:12]}: ref main/checkpoint, pr/3/checkpoint names it" in out and "removed" not in out
    assert store.info(key) is not None and store.get_ref("main/checkpoint") == key
    with pytest.raises(StoreError, match="named by ref main/checkpoint, pr/3/checkpoint: not removed"):
        store.remove(key)
    with pytest.raises(StoreCorrupt):
        store.get(key)  # kept, and still never served
    assert store_main(where + ["ref", "rm", "main/checkpoint", "pr/3/checkpoint"]) == 0
    assert store_main(where + ["verify", "--fix"]) == 1
    assert f"removed {key[:12]}" in capsys.readouterr().out
    assert store_main(where + ["verify"]) == 0


def test_ref_set_and_rm_from_the_command_line(store, capsys):
    a, b = (store.ensure(artifact_key("checkpoint", n=n), abc, kind="checkpoint").name for n in (1, 2))
    store.record_put("replay-record", {"leaves": {}})
    where = ["--url", store.url]
    assert store_main(where + ["ref", "set", "main/checkpoint", a[:12], "--expect", "none"]) == 0
    assert store.get_ref("main/checkpoint") == a
    assert store_main(where + ["ref", "set", "main/replay", "replay-record"]) == 0
    capsys.readouterr()
    assert store_main(where + ["ref", "ls", "main/"]) == 0
    assert capsys.readouterr().out == f"main/checkpoint  {a}\nmain/replay  replay-record\n"
    # a compare-and-swap that lost: nothing moves, one line, exit 2
    assert store_main(where + ["ref", "set", "main/checkpoint", b, "--expect", b]) == 2
    err = capsys.readouterr().err
    assert err == f"lab-hooks store: ref main/checkpoint moved to {a[:12]} (expected {b[:12]})\n"
    assert store_main(where + ["ref", "set", "main/checkpoint", b, "--expect", a]) == 0
    assert store.get_ref("main/checkpoint") == b
    for bad in (["set", "x", "0" * 12], ["set", "x", ""]):
        assert store_main(where + ["ref", *bad]) == 2
        assert "names no artifact or record" in capsys.readouterr().err
    assert store_main(where + ["ref", "rm", "main/checkpoint", "nosuch"]) == 1
    assert capsys.readouterr().err == "lab-hooks store: no ref nosuch\n"
    assert store.get_ref("main/checkpoint") == b  # all named, or none deleted
    assert store_main(where + ["ref", "rm", "main/checkpoint"]) == 0
    assert store.refs() == {"main/replay": "replay-record"}


# -- what get serves ---------------------------------------------------------

def test_a_tampered_artifact_is_never_served(store, monkeypatch):
    """However the bytes change (same size, mtime set back), get refuses them; an untouched
    artifact is hashed once when made and then only stat'ed, in this process and the next."""
    import lab_hooks.store.store as store_module

    hashed = []
    real_sha256 = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda p: hashed.append(Path(p).name) or real_sha256(p))
    key = artifact_key("checkpoint", n=7)

    def weights(out: Path) -> None:
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
        (out / "config.json").write_text("{}")

    path = store.ensure(key, weights, kind="checkpoint")
    hashed.clear()
    again = Store(url=store.url)  # another process: the stamp is in the manifest
    for s in (store, again, store):
        assert s.get(key) == path
    assert hashed == []  # served without re-reading the weights

    weights_file = path / "model.safetensors"
    before = weights_file.stat()
    weights_file.chmod(0o644)
    with open(weights_file, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff")  # one byte, same size
    os.utime(weights_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the mtime set back
    for s in (store, again, Store(url=store.url)):
        with pytest.raises(StoreCorrupt, match=rf"artifact {key[:12]} is not served: model.safetensors: content changed"):
            s.get(key)
        with pytest.raises(StoreCorrupt):
            s.ensure(key, weights, kind="checkpoint")

    with open(weights_file, "r+b") as fh:  # the bytes put back (a restore from a backup, a copy):
        fh.seek(1000)
        fh.write(bytes([1000 % 256]))
    hashed.clear()
    assert store.get(key) == path  # hashed again once, clean: served, the new stamp kept
    assert sorted(hashed) == ["config.json", "model.safetensors"]
    hashed.clear()
    assert Store(url=store.url).get(key) == path and hashed == []


# -- verify and gc ---------------------------------------------------------

def test_gc_keeps_refs_recent_runs_and_recent_artifacts(store, capsys):
    def make(name):
        return store.ensure(artifact_key("x", name=name), lambda out: (out / "f").write_text(name), kind="x")

    referenced, used, loose, fresh = (make(n).name for n in ("referenced", "used", "loose", "fresh"))
    store.set_ref("main/checkpoint", referenced)
    with store.run("pr", {"pr": 1}) as run:
        run.use(used)
    store.record_put("old-record", 1)
    (store.tmp / f"{loose}.999.dead").mkdir()  # a crashed builder's leftovers
    age(store, "artifacts", where="WHERE key != ?", params=(fresh,))
    age(store, "records")

    assert store_main(["--url", store.url, "gc", "--dry-run"]) == 0
    assert "would delete 1 artifacts, 1 records, 0 runs, 1 unfinished dirs" in capsys.readouterr().out
    assert store.get(loose)
    report = store.gc()
    assert report.artifacts == [loose] and report.records == 1 and report.garbage_dirs
    assert store.get(loose) is None and all(store.get(k) for k in (referenced, used, fresh))
    age(store, "runs")
    assert store.gc().artifacts == [used] and store.gc().runs == 0
    assert store.get(referenced) and store.verify() == []


def test_gc_waits_for_no_job_and_a_killed_job_does_not_block_it(store, capsys):
    """A job (a pr or promote run) holds the store while it runs: gc refuses, in one
    line with exit 1, rather than delete what the job found but has not named yet."""
    loose = store.ensure(artifact_key("x", name="old cache"), lambda out: (out / "f").write_text("x"), kind="x").name
    age(store, "artifacts")
    job = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lab_hooks.store import Store\n"
         f"with Store(url={store.url!r}).run('pr', {{'pr': 1}}):\n    print('ready', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert job.stdout.readline() == "ready\n"
        with pytest.raises(StoreBusy, match=r"a job \(pr, promote, generate, train, eval\) is using the store"):
            store.gc()
        assert store_main(["--url", store.url, "gc"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("lab-hooks store: ") and err.count("\n") == 1
        assert store.gc(dry_run=True).artifacts == [loose] and store.get(loose)  # looking is fine
        with store.run("promote"):  # jobs run beside each other
            pass
    finally:
        job.kill()
        job.wait()
    # The dead job's lock goes with its connection: at once for a flock (SQLite); PostgreSQL
    # drops an advisory lock when its server process sees the connection close, a moment later.
    deadline = time.monotonic() + 30
    while True:
        try:
            assert store.gc().artifacts == [loose]
            break
        except StoreBusy:
            assert time.monotonic() < deadline, "the killed job's lock was never released"
            time.sleep(0.05)


def test_cli_reports_bad_home_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert store_main(["--home", str(tmp_path / "file" / "store"), "ls"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lab-hooks store: no store at ") and err.count("\n") == 1
    for where in (["--home", str(tmp_path / "typo")], ["--url", f"sqlite://{tmp_path}/typo"]):
        for command in (["ls"], ["verify"], ["gc"], ["ref", "ls"]):
            assert store_main([*where, *command]) == 1  # one line, and no store made at the typo
            assert capsys.readouterr().err == f"lab-hooks store: no store at {tmp_path}/typo (not a directory)\n"
    assert not (tmp_path / "typo").exists()
    assert store_main(["bogus"]) == 2


# -- real processes --------------------------------------------------------

def finished(proc) -> bool:
    """The writer ran all its steps and exited cleanly."""
    lines = proc.communicate(timeout=120)[0].split("\n")
    return proc.returncode == 0 and lines[0] == "ready" and lines[-2:] == ["done", ""]


def test_two_processes_at_once_build_each_key_once(new_store_url, tmp_path):
    home, log, solo = new_store_url("store"), tmp_path / "builds.log", new_store_url("solo")
    alone = writer(solo)  # the reference, in its own store
    procs = [writer(home, str(log)) for _ in range(2)]
    assert all(finished(p) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    builds = log.read_text().splitlines()
    kinds_steps = [" ".join(line.split()[:2]) for line in builds]
    assert len(kinds_steps) == len(set(kinds_steps)) == 80  # every key computed once, by one of them
    assert len({line.split()[2] for line in builds}) == 2  # and both did part of the work
    store = Store(url=home)
    assert store.verify() == [] and store.garbage() == []

    assert finished(alone)
    assert snapshot(store) == snapshot(Store(url=solo))


def test_kill_9_at_random_points_then_verify_and_rerun(new_store_url):
    home, clean = new_store_url("store"), new_store_url("clean")
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
        store = Store(url=home)
        assert store.verify() == []
        interrupted_builds += bool(store.garbage())
        ckpt, replay = store.get_ref("main/checkpoint"), store.get_ref("main/replay")
        if ckpt or replay:  # the pair moves together, never a mix
            assert store.info(ckpt).meta == store.info(replay).meta
        store.close()
    assert kills >= 20 and interrupted_builds  # some kills landed inside a build

    assert finished(writer(home))
    store = Store(url=home)
    assert store.verify() == [] and store.garbage() == []
    assert finished(uninterrupted)
    assert snapshot(store) == snapshot(Store(url=clean))


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
    age(store, "artifacts")
    age(store, "records")
    assert store.gc().artifacts == [loose]  # ref -> record -> checkpoint -> data, all kept
    assert store.get(model) and store.get(data) and store.verify() == []

    store.remove(data)  # a dependency gone: verify names it and who needs it
    assert [(p.key, p.message) for p in store.verify()] == [(data, f"missing, but {model[:12]} depends on it (rebuild it)")]
    make("sdg data")
    store.delete_refs("main/replay")
    age(store, "artifacts")
    report = store.gc()
    assert sorted(report.artifacts) == sorted([model, data]) and report.records == 1
    assert store.db.read("SELECT count(*) FROM deps") == [(0,)]


V2_SCHEMA = """
CREATE TABLE artifacts (key TEXT PRIMARY KEY, kind TEXT NOT NULL, meta TEXT NOT NULL,
    created REAL NOT NULL, size INTEGER NOT NULL, nfiles INTEGER NOT NULL);
CREATE TABLE files (key TEXT NOT NULL REFERENCES artifacts(key) ON DELETE CASCADE,
    path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (key, path));
CREATE TABLE records (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE refs (name TEXT PRIMARY KEY, key TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, meta TEXT NOT NULL,
    started REAL NOT NULL, finished REAL, status TEXT NOT NULL);
CREATE TABLE run_uses (run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,
    PRIMARY KEY (run, key));
PRAGMA user_version=2;
"""


def test_older_manifests_are_upgraded_and_newer_refused(tmp_path):
    """A v2 manifest (as the previous release wrote it, without deps): its artifacts, hashed
    when made, are served after one re-hash; a manifest from a newer lab-hooks is refused."""
    import sqlite3

    from lab_hooks.store.keys import sha256_file

    key = artifact_key("checkpoint", n=1)
    home = tmp_path / "s"
    (home / "objects" / key[:2] / key).mkdir(parents=True)
    (home / "objects" / key[:2] / key / "w").write_text("weights")
    db = sqlite3.connect(home / "manifest.sqlite")
    db.executescript(V2_SCHEMA)
    db.execute("INSERT INTO artifacts VALUES (?, 'checkpoint', '{}', 1.0, 7, 1)", (key,))
    db.execute("INSERT INTO files VALUES (?, 'w', ?, 7)", (key, sha256_file(home / "objects" / key[:2] / key / "w")))
    db.execute("INSERT INTO refs VALUES ('main/checkpoint', ?, 1.0)", (key,))
    db.commit()
    db.close()
    store = Store(home)
    assert store.get_ref("main/checkpoint") == key and store.get(key).name == key
    store.record_put("r", 1, deps=[key])
    assert store.deps("r") == [key] and store.verify() == []
    db = sqlite3.connect(home / "manifest.sqlite")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="manifest schema v99, this lab-hooks reads v3"):
        Store(home)


def test_many_runners_opening_a_new_store_at_once_all_succeed(tmp_path):
    """Switching a new manifest to WAL takes a lock SQLite's busy timeout does not wait for:
    each opener must get a working store, never "database is locked"."""
    errors: list[BaseException] = []

    def open_store(home):
        try:
            Store(home).refs()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    for attempt in range(20):  # the race is narrow: several new stores, sixteen openers each
        threads = [threading.Thread(target=open_store, args=(tmp_path / str(attempt),)) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
