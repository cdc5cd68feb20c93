"""Several runners, one truth: the store's guarantees between real processes, on both backends.

Each test runs against SQLite and against a real PostgreSQL server the suite
starts itself (tests/postgres_server.py): concurrent promotions through the
ref compare-and-swap, a builder killed with kill -9 inside its build, a runner
that sleeps through a promotion, and `store migrate` of a real local store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_hooks.store import Store, StoreError, artifact_key
from lab_hooks.store.cli import main as store_main

REPO = Path(__file__).resolve().parents[1]
WRITER = Path(__file__).with_name("store_writer.py")
ENV = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{Path(__file__).parent}"}

# A promoter: read main, make the next checkpoint from it, move main by compare-and-swap;
# on a lost swap read main again and retry (what `promote` does), up to ROUNDS moves.
PROMOTER = """
import sys
from lab_hooks.store import Store, StoreError, artifact_key
store, who, rounds = Store(sys.argv[1]), sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
moved = lost = 0
while moved < rounds:
    parent = store.get_ref("main/checkpoint")
    key = artifact_key("checkpoint", parent=parent, who=who)
    store.ensure(key, lambda out: (out / "parent").write_text(parent or "none"), kind="checkpoint",
                 meta={"parent": parent, "who": who})
    try:
        store.set_refs({"main/checkpoint": key}, expect={"main/checkpoint": parent})
        moved += 1
    except StoreError:
        lost += 1
print(moved, lost, flush=True)
"""


def spawn(*args: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdin=stdin, stdout=subprocess.PIPE, text=True, env=ENV)


def test_concurrent_promotions_end_in_one_line_of_main(store_url):
    """Three processes move main 25 times each at once: every move that succeeded is on main's
    one line of parents (a lost compare-and-swap retried from the new main, none overwritten)."""
    procs = [spawn("-c", PROMOTER, store_url, who, "25", stdin=subprocess.PIPE) for who in "abc"]
    assert all(p.stdout.readline() == "ready\n" for p in procs)
    for p in procs:  # start together
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [int(moved) for moved, _ in results] == [25, 25, 25]
    store = Store(store_url)
    line, key = [], store.get_ref("main/checkpoint")
    while key:
        line.append(key)
        key = store.info(key).meta["parent"]
    assert len(line) == 75 and len(set(line)) == 75  # no move lost, no cycle
    assert sorted(store.info(k).meta["who"] for k in line) == sorted("abc" * 25)
    assert sum(int(lost) for _, lost in results) > 0  # they did race
    assert store.verify() == []


BUILDER = """
import sys, time
from lab_hooks.store import Store, artifact_key
store = Store(sys.argv[1])
def build(out):
    (out / "weights").write_bytes(b"half")
    print("inside", flush=True)
    time.sleep(600)
store.ensure(artifact_key("checkpoint", n=1), build, kind="checkpoint")
"""


def test_a_builder_killed_mid_build_leaves_nothing_half_made_and_frees_its_key(store_url):
    key = artifact_key("checkpoint", n=1)
    builder = spawn("-c", BUILDER, store_url)
    try:
        assert builder.stdout.readline() == "inside\n"
        store = Store(store_url)
        assert store.get(key) is None  # nothing half-made is visible
        with store.lock(key, blocking=False) as free:
            assert not free  # the builder holds the key
        builder.send_signal(signal.SIGKILL)
        builder.wait(30)
        began = time.monotonic()
        path = store.ensure(key, lambda out: (out / "weights").write_bytes(b"whole"), kind="checkpoint")
        assert time.monotonic() - began < 10  # the dead builder's lock went with it
        assert (path / "weights").read_bytes() == b"whole"
        assert store.garbage() == [] and store.verify() == []  # its tmp dir was cleared by the next builder
    finally:
        builder.kill()
        builder.wait()


RUNNER = """
import sys
from lab_hooks.store import Store
store = Store(sys.argv[1])  # opened (connected) before the promotion
with store.run("pr", {"pr": 1}):
    seen = store.get_ref("main/checkpoint")
print(seen, flush=True)  # its job done, the runner goes offline: stopped while main moves
sys.stdin.readline()
with store.run("pr", {"pr": 2}) as run:
    main = store.get_ref("main/checkpoint")
    run.use(main)
    print(main, (store.get(main) / "name").read_text(), flush=True)
"""


def test_a_runner_offline_during_a_promotion_uses_the_new_main(store_url):
    store = Store(store_url)
    old, new = (store.ensure(artifact_key("checkpoint", name=n), lambda out, n=n: (out / "name").write_text(n),
                             kind="checkpoint").name for n in ("old", "new"))
    store.set_ref("main/checkpoint", old)
    runner = spawn("-c", RUNNER, store_url, stdin=subprocess.PIPE)
    try:
        assert runner.stdout.readline().strip() == old
        runner.send_signal(signal.SIGSTOP)
        store.set_refs({"main/checkpoint": new}, expect={"main/checkpoint": old})
        runner.send_signal(signal.SIGCONT)
        out = runner.communicate("back\n", timeout=60)[0]
        assert out.split() == [new, "new"]
    finally:
        runner.kill()
        runner.wait()


def populate(url: str) -> None:
    """A real store: the writer's artifacts, records and ref pairs (tests/store_writer.py)."""
    proc = subprocess.run([sys.executable, str(WRITER), url], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout.endswith("done\n"), proc.stderr


def contents(store: Store) -> dict:
    rows = {table: sorted(tuple(r) for r in store.db.read(sql)) for table, sql in (
        ("artifacts", "SELECT key, kind, meta, created, size, nfiles FROM artifacts"),
        ("files", "SELECT key, path, sha256, size FROM files"),
        ("records", "SELECT key, value, created FROM records"),
        ("deps", "SELECT parent, child FROM deps"),
        ("runs", "SELECT kind, meta, started, finished, status FROM runs"),
        ("uses", "SELECT r.started, u.key FROM run_uses u JOIN runs r ON r.id = u.run"))}
    return {**rows, "refs": store.refs()}


def test_migrate_moves_a_real_local_store(tmp_path, new_store_url, capsys):
    """`store migrate --to URL` carries everything, hashed on arrival; a rerun is a no-op."""
    local = tmp_path / "local"
    populate(f"sqlite://{local}")
    source = Store(local)
    source.record_put("replay-record", {"leaves": {}}, deps=[source.get_ref("main/replay")])
    target_url = new_store_url("migrated")
    assert store_main(["--home", str(local), "migrate", "--to", target_url]) == 0
    out = capsys.readouterr().out
    assert "migrated 80 artifacts" in out and "0 were there" in out and "1,001 records, 40 runs, 2 refs" in out
    target = Store(target_url)
    assert contents(target) == contents(source) and target.verify() == []
    assert target.home != source.home and all(target.get(a.key) for a in target.artifacts())
    assert store_main(["--home", str(local), "migrate", "--to", target_url]) == 0
    assert "migrated 0 artifacts" in capsys.readouterr().out and contents(target) == contents(source)
    # A store that already names other things is not merged into.
    source.set_ref("main/checkpoint", source.artifacts()[0].key)
    assert store_main(["--home", str(local), "migrate", "--to", target_url]) == 2
    assert "already has ref main/checkpoint" in capsys.readouterr().err


def test_migrate_refuses_a_tampered_artifact_and_a_running_job(tmp_path, new_store_url, capsys):
    local = tmp_path / "local"
    source = Store(local)
    key = source.ensure(artifact_key("checkpoint", n=1), lambda out: (out / "w").write_text("weights"),
                        kind="checkpoint").name
    target_url = new_store_url("migrated")
    with source.run("pr"):
        assert store_main(["--home", str(local), "migrate", "--to", target_url]) == 2
        assert "a job (pr, promote, generate, train, eval) is using the store" in capsys.readouterr().err
    weights = source.get(key) / "w"
    weights.chmod(0o644)
    weights.write_text("WEIGHTS")
    assert store_main(["--home", str(local), "migrate", "--to", target_url]) == 2
    assert capsys.readouterr().err.startswith(f"lab-hooks store: artifact {key[:12]} is not served: w: content changed")
    assert Store(target_url).info(key) is None


def test_store_urls_are_checked_in_one_line(tmp_path, capsys):
    for url, message in (
            ("postgresql://u:secret@127.0.0.1:1/db", "name the artifacts directory every runner mounts"),
            ("postgresql://u:secret@127.0.0.1:1/db?artifacts=rel/dir", "as an absolute path"),
            ("mysql://x/y", "expected postgresql://…?artifacts=/shared/dir or sqlite:///dir"),
            (f"postgresql://u:secret@127.0.0.1:1/db?artifacts={tmp_path}", "127.0.0.1")):
        assert store_main(["--url", url, "ls"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lab-hooks store: ") and err.count("\n") == 1 and message in err, err
        assert "secret" not in err


def test_a_runner_without_the_shared_mount_stops(postgres_server, tmp_path):
    """The database and the artifacts directory name each other: a runner whose mount is
    missing (an empty local dir) or is another store's is told so instead of rebuilding."""
    url = postgres_server.database()
    Store(f"{url}?artifacts={tmp_path / 'shared'}")
    with pytest.raises(StoreError, match="STORE_ID missing.*is the shared directory mounted here"):
        Store(f"{url}?artifacts={tmp_path / 'unmounted'}")
    other = postgres_server.database()
    with pytest.raises(StoreError, match="belongs to another store"):
        Store(f"{other}?artifacts={tmp_path / 'shared'}")


def test_the_hook_path_and_a_local_store_never_import_the_driver(tmp_path):
    leaf = REPO / "taxonomy" / "compositional_skills"
    script = (f"import sys\nfrom lab_hooks.cli import main\nfrom lab_hooks.store import Store\n"
              f"Store({str(tmp_path / 'store')!r}).record_put('r', 1)\n"
              f"code = main(['validate', *map(str, __import__('pathlib').Path({str(leaf)!r}).rglob('qna.yaml'))])\n"
              "print(code, 'psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 False"


def test_a_postgresql_url_without_the_driver_says_what_to_install(tmp_path):
    script = ("import sys\nsys.modules['psycopg'] = None  # as if the postgres extra were not installed\n"
              "from lab_hooks.store.cli import main\n"
              f"sys.exit(main(['--url', 'postgresql://lab@127.0.0.1:1/lab?artifacts={tmp_path}', 'ls']))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr == ("lab-hooks store: a postgresql:// store needs the PostgreSQL driver: "
                           "pip install 'lab-hooks[postgres]'\n")
