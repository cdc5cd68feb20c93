"""The store: a SQLite manifest (WAL) beside immutable artifact directories.

Layout under the store's home (default `LAB_HOME/store`):

    manifest.sqlite         artifacts, their files' sha256, JSON records, refs, runs
    objects/ab/<key>/       one complete artifact per key (files made read-only)
    tmp/<key>.<pid>.<rnd>/  artifacts being built
    locks/<key>.lock        one flock per key: builders of the same key take turns
    locks/jobs.lock         shared by every running job (`run`), exclusive for `gc`

The manifest is the only truth about completeness: a directory under objects/
counts only once its row is in `artifacts`, and the row is written after the
files were fsynced and the directory renamed into place. A crash at any point
leaves either nothing, a tmp dir, or an unregistered directory, all of which
look unfinished, are rebuilt over, and are removed by `gc`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from lab_hooks.home import lab_home
from lab_hooks.store.keys import canonical_json, is_key, sha256_file

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, meta TEXT NOT NULL,
    created REAL NOT NULL, size INTEGER NOT NULL, nfiles INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    key TEXT NOT NULL REFERENCES artifacts(key) ON DELETE CASCADE,
    path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (key, path));
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, key TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, meta TEXT NOT NULL,
    started REAL NOT NULL, finished REAL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_uses (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,
    PRIMARY KEY (run, key));
CREATE INDEX IF NOT EXISTS run_uses_key ON run_uses(key);
CREATE TABLE IF NOT EXISTS deps (parent TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (parent, child));
"""
# What gc must keep: anything a ref names, a run started since `cutoff` used, or
# that was made since `cutoff`, and everything those depend on (a replay record
# lists the data it replays).
_LIVE = """WITH RECURSIVE live(key) AS (
    SELECT key FROM (SELECT key FROM refs UNION
                     SELECT u.key FROM run_uses u JOIN runs r ON r.id = u.run WHERE r.started >= :cutoff UNION
                     SELECT key FROM artifacts WHERE created >= :cutoff UNION
                     SELECT key FROM records WHERE created >= :cutoff)
    UNION SELECT d.child FROM deps d JOIN live ON d.parent = live.key)
  SELECT key FROM live"""
DEFAULT_KEEP_DAYS = 7.0
JOBS_LOCK = "jobs"  # locks/jobs.lock: not a key, so never taken for garbage


class StoreError(Exception):
    """Misuse or an inconsistent store; the message is one line for the user."""


class StoreBusy(StoreError):
    """`gc` found a job running: it may be about to name something gc would delete."""


@dataclass(frozen=True)
class Artifact:
    key: str
    kind: str
    meta: dict
    created: float
    size: int
    nfiles: int
    path: Path


@dataclass(frozen=True)
class Problem:
    """One finding of `verify`: `key` and `path` say where."""

    key: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.key[:12]} {self.path}: {self.message}" if self.path else f"{self.key[:12]}: {self.message}"


@dataclass
class GcReport:
    artifacts: list[str] = field(default_factory=list)
    records: int = 0
    runs: int = 0
    garbage_dirs: list[str] = field(default_factory=list)
    freed_bytes: int = 0


@dataclass
class Run:
    """One job (a PR run, a promotion): what it used stays live for `keep` days."""

    id: int
    store: Store

    def use(self, *keys: str) -> None:
        self.store._write(
            lambda db: db.executemany("INSERT OR IGNORE INTO run_uses VALUES (?, ?)", [(self.id, k) for k in keys])
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Store:
    """Content-keyed artifacts, JSON records and refs; safe across processes.

    One `Store` may be shared by the threads of a process (one SQLite connection
    per thread) and survives `fork` (a child opens its own connection).
    """

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home) if home is not None else lab_home() / "store"
        self.objects = self.home / "objects"
        self.tmp = self.home / "tmp"
        self.locks = self.home / "locks"
        for d in (self.objects, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db()  # create the schema now: fail early on an unusable home

    def __reduce__(self):
        # Pickles as its home (for worker processes): connections are per process.
        return (Store, (self.home,))

    # -- SQLite ------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(self.home / "manifest.sqlite", timeout=60, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a killed process loses nothing committed; a power
        # cut may lose the last transactions but never corrupts the manifest.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:  # older ones only lack tables: CREATE IF NOT EXISTS adds them
                    raise StoreError(f"{self.home}: manifest schema v{version}, this lab-hooks reads v{SCHEMA_VERSION}")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn` in one write transaction (all or nothing)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    # -- locks -------------------------------------------------------------

    @contextmanager
    def _key_lock(self, key: str, blocking: bool = True, shared: bool = False) -> Iterator[bool]:
        """A flock on `locks/<key>.lock` (exclusive unless `shared`); the kernel drops it when we die.

        With blocking=False, yields False instead of waiting for a holder.
        """
        fd = os.open(self.locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # -- artifacts ---------------------------------------------------------

    def _object_dir(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def get(self, key: str) -> Path | None:
        """The directory of the complete artifact `key`, or None."""
        _check_key(key)
        row = self._db().execute("SELECT 1 FROM artifacts WHERE key = ?", (key,)).fetchone()
        path = self._object_dir(key)
        return path if row and path.is_dir() else None

    def info(self, key: str) -> Artifact | None:
        row = self._db().execute(
            "SELECT key, kind, meta, created, size, nfiles FROM artifacts WHERE key = ?", (key,)
        ).fetchone()
        return self._artifact(row) if row else None

    def artifacts(self, kind: str | None = None) -> list[Artifact]:
        sql = "SELECT key, kind, meta, created, size, nfiles FROM artifacts"
        rows = self._db().execute(sql + (" WHERE kind = ? ORDER BY created" if kind else " ORDER BY created"),
                                  (kind,) if kind else ()).fetchall()
        return [self._artifact(r) for r in rows]

    def _artifact(self, row: tuple) -> Artifact:
        key, kind, meta, created, size, nfiles = row
        return Artifact(key, kind, json.loads(meta), created, size, nfiles, self._object_dir(key))

    @contextmanager
    def build(self, key: str, *, kind: str, meta: dict | None = None, deps: Iterable[str] = ()) -> Iterator[Path]:
        """Yield an empty directory to write the artifact into; register it on clean exit.

        Holds the key's lock throughout, so two builders of one key take turns
        (different keys never wait for each other). The body always runs; use
        `ensure` to skip the work when the artifact exists. An exception in the
        body discards everything written. `deps`: keys this artifact needs,
        kept by gc as long as it is.
        """
        _check_key(key)
        meta_json = canonical_json(meta or {})
        with self._key_lock(key):
            tmp = self._new_tmp(key)
            try:
                yield tmp
                self._commit(key, kind, meta_json, tmp, deps)
            finally:
                _rmtree(tmp)

    def ensure(self, key: str, build: Callable[[Path], None], *, kind: str, meta: dict | None = None,
               deps: Iterable[str] = ()) -> Path:
        """The artifact `key`, calling `build(dir)` to make it if no process has.

        Concurrent callers with the same key: one builds, the others wait and
        then return its result. A crash of the builder leaves the key unbuilt.
        """
        path = self.get(key)
        if path is not None:
            return path
        _check_key(key)
        meta_json = canonical_json(meta or {})
        with self._key_lock(key):
            path = self.get(key)
            if path is not None:
                return path
            tmp = self._new_tmp(key)
            try:
                build(tmp)
                return self._commit(key, kind, meta_json, tmp, deps)
            finally:
                _rmtree(tmp)

    def _new_tmp(self, key: str) -> Path:
        # We hold the key's lock: any other tmp dir of this key is a dead builder's.
        for stale in self.tmp.glob(f"{key}.*"):
            _rmtree(stale)
        tmp = self.tmp / f"{key}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.mkdir()
        return tmp

    def _commit(self, key: str, kind: str, meta_json: str, tmp: Path, deps: Iterable[str] = ()) -> Path:
        """Seal `tmp` as artifact `key` (caller holds the key's lock)."""
        files = []
        for path in sorted(tmp.rglob("*")):
            rel = path.relative_to(tmp).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise StoreError(f"artifact {kind} {key[:12]}: {rel} is not a regular file (symlinks are not stored)")
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            path.chmod(0o444)  # artifacts are immutable: a stray write fails loudly
            files.append((key, rel, sha256_file(path), path.stat().st_size))
        for d in sorted((p for p in tmp.rglob("*") if p.is_dir()), reverse=True):
            _fsync_dir(d)
        _fsync_dir(tmp)

        final = self._object_dir(key)
        db = self._db()
        if db.execute("SELECT 1 FROM artifacts WHERE key = ?", (key,)).fetchone():
            if final.is_dir():
                return final  # built meanwhile (same key, same content): keep the first
            self._write(lambda db: db.execute("DELETE FROM artifacts WHERE key = ?", (key,)))
        if final.exists():
            _rmtree(final)  # unregistered: a crash between rename and manifest row
        final.parent.mkdir(exist_ok=True)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        size = sum(f[3] for f in files)

        def register(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?)",
                       (key, kind, meta_json, time.time(), size, len(files)))
            db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", files)
            _add_deps(db, key, deps)

        self._write(register)
        return final

    # -- records -----------------------------------------------------------

    def record_get(self, key: str) -> Any | None:
        row = self._db().execute("SELECT value FROM records WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_get_many(self, keys: list[str]) -> dict[str, Any]:
        """The records that exist among `keys` (absent keys are left out)."""
        out: dict[str, Any] = {}
        db = self._db()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in db.execute(f"SELECT key, value FROM records WHERE key IN ({marks})", chunk):
                out[key] = json.loads(value)
        return out

    def record_count(self) -> int:
        return self._db().execute("SELECT count(*) FROM records").fetchone()[0]

    def record_put(self, key: str, value: Any, deps: Iterable[str] = ()) -> None:
        """Store a JSON value; `deps` are keys it names that gc must keep while it lives."""
        self.record_put_many({key: value}, {key: deps})

    def record_put_many(self, items: dict[str, Any], deps: dict[str, Iterable[str]] | None = None) -> None:
        """Store JSON values under their keys, all in one transaction."""
        now = time.time()
        rows = [(_check_record_key(k), canonical_json(v), now) for k, v in items.items()]

        def put(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", rows)
            for parent, children in (deps or {}).items():
                _add_deps(db, parent, children)

        self._write(put)

    # -- refs --------------------------------------------------------------

    def get_ref(self, name: str) -> str | None:
        row = self._db().execute("SELECT key FROM refs WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def refs(self, prefix: str = "") -> dict[str, str]:
        rows = self._db().execute("SELECT name, key FROM refs WHERE substr(name, 1, ?) = ? ORDER BY name",
                                  (len(prefix), prefix))
        return dict(rows.fetchall())

    def set_ref(self, name: str, key: str) -> None:
        self.set_refs({name: key})

    def set_refs(self, refs: dict[str, str], expect: dict[str, str | None] | None = None) -> None:
        """Point several refs at existing artifacts or records in ONE transaction.

        A crash leaves all of them old or all new. `expect` (name -> key or
        None for absent) makes it a compare-and-swap: StoreError if another
        process moved a ref since the caller read it.
        """
        def swap(db: sqlite3.Connection) -> None:
            for name, old in (expect or {}).items():
                row = db.execute("SELECT key FROM refs WHERE name = ?", (name,)).fetchone()
                if (row[0] if row else None) != old:
                    raise StoreError(f"ref {name} moved to {row[0][:12] if row else 'nothing'} "
                                     f"(expected {old[:12] if old else 'nothing'})")
            now = time.time()
            for name, key in refs.items():
                if not name or not isinstance(name, str):
                    raise StoreError("ref names are non-empty strings")
                known = db.execute("SELECT 1 FROM artifacts WHERE key = ? UNION ALL "
                                   "SELECT 1 FROM records WHERE key = ?", (key, key)).fetchone()
                if not known:
                    raise StoreError(f"ref {name}: no artifact or record {key[:12]} in the store")
                db.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?)", (name, key, now))

        self._write(swap)

    def delete_refs(self, *names: str) -> None:
        self._write(lambda db: db.executemany("DELETE FROM refs WHERE name = ?", [(n,) for n in names]))

    # -- runs --------------------------------------------------------------

    @contextmanager
    def run(self, kind: str, meta: dict | None = None) -> Iterator[Run]:
        """Record a job; keys passed to `run.use` stay live for gc's keep window.

        While it runs, the job holds the store's jobs lock (shared): `gc` does not
        run beside it, so nothing the job found in the store, and has not yet named
        in a ref or a dependency, disappears under it (old cached data included).
        """
        meta_json = canonical_json(meta or {})
        with self._key_lock(JOBS_LOCK, shared=True):
            run_id = self._write(lambda db: db.execute(
                "INSERT INTO runs (kind, meta, started, status) VALUES (?, ?, ?, 'running')",
                (kind, meta_json, time.time())).lastrowid)
            status = "failed"
            try:
                yield Run(run_id, self)
                status = "ok"
            finally:
                self._write(lambda db: db.execute("UPDATE runs SET finished = ?, status = ? WHERE id = ?",
                                                  (time.time(), status, run_id)))

    # -- maintenance -------------------------------------------------------

    def verify(self) -> list[Problem]:
        """Re-hash every registered file; a list of what is missing, changed or extra."""
        problems: list[Problem] = []
        db = self._db()
        for (result,) in db.execute("PRAGMA quick_check"):
            if result != "ok":
                problems.append(Problem("manifest", "manifest.sqlite", result))
        recorded: dict[str, dict[str, tuple[str, int]]] = {}
        for key, rel, sha, size in db.execute("SELECT key, path, sha256, size FROM files"):
            recorded.setdefault(key, {})[rel] = (sha, size)
        for art in self.artifacts():
            if not art.path.is_dir():
                problems.append(Problem(art.key, "", "registered but its directory is missing"))
                continue
            want = recorded.get(art.key, {})
            if len(want) != art.nfiles:
                problems.append(Problem(art.key, "", f"manifest lists {len(want)} files, expected {art.nfiles}"))
            have = {p.relative_to(art.path).as_posix(): p for p in art.path.rglob("*") if not p.is_dir()}
            for rel in sorted(set(have) - set(want)):
                problems.append(Problem(art.key, rel, "extra file, not in the manifest"))
            for rel, (sha, size) in sorted(want.items()):
                path = have.get(rel)
                if path is None or path.is_symlink() or not path.is_file():
                    problems.append(Problem(art.key, rel, "missing"))
                elif path.stat().st_size != size:
                    problems.append(Problem(art.key, rel, f"size {path.stat().st_size}, recorded {size}"))
                elif sha256_file(path) != sha:
                    problems.append(Problem(art.key, rel, "content changed (sha256 differs)"))
        for name, key in self.refs().items():
            if self.info(key) is None and self.record_get(key) is None:
                problems.append(Problem(key, "", f"ref {name} names nothing in the store (rebuild it or delete the ref)"))
        for parent, child in db.execute(
                "SELECT parent, child FROM deps WHERE parent IN (SELECT key FROM artifacts UNION SELECT key FROM records)"
                " AND child NOT IN (SELECT key FROM artifacts UNION SELECT key FROM records)"):
            problems.append(Problem(child, "", f"missing, but {parent[:12]} depends on it (rebuild it)"))
        return problems

    def remove(self, key: str) -> bool:
        """Unregister and delete one artifact (e.g. one `verify` found corrupt).

        The row goes first, so a crash in between leaves only garbage. False
        if a builder holds the key.
        """
        _check_key(key)
        with self._key_lock(key, blocking=False) as held:
            if not held:
                return False
            self._write(lambda db: db.execute("DELETE FROM artifacts WHERE key = ?", (key,)))
            _rmtree(self._object_dir(key))
            return True

    def garbage(self) -> list[Path]:
        """Directories that are no complete artifact: dead builders' tmp dirs, unregistered objects."""
        registered = {r[0] for r in self._db().execute("SELECT key FROM artifacts")}
        out = sorted(self.tmp.iterdir())
        out += sorted(p for p in self.objects.glob("??/*") if p.name not in registered)
        return out

    def gc(self, keep_days: float = DEFAULT_KEEP_DAYS, dry_run: bool = False) -> GcReport:
        """Delete what no ref names and no run of the last `keep_days` used.

        Artifacts and records younger than `keep_days` are kept too, so a job
        that has just built something but not yet set a ref never loses it.
        Keys being built right now (lock held) are skipped. StoreBusy while a
        job (`run`) is running: it may still be about to name what looks dead.
        """
        if dry_run:
            return self._gc(keep_days, dry_run)
        with self._key_lock(JOBS_LOCK, blocking=False) as held:
            if not held:
                raise StoreBusy(f"{self.home}: a job (pr, promote, generate, train, eval) is using the store; gc deletes nothing "
                                "while one runs: try again when it has finished")
            return self._gc(keep_days, dry_run)

    def _gc(self, keep_days: float, dry_run: bool) -> GcReport:
        cutoff = time.time() - keep_days * 86400
        report = GcReport()
        db = self._db()
        dead = [r[0] for r in db.execute(
            f"SELECT key FROM artifacts WHERE created < :cutoff AND key NOT IN ({_LIVE})", {"cutoff": cutoff})]
        for key in dead:
            if dry_run:
                report.artifacts.append(key)
                continue
            with self._key_lock(key, blocking=False) as held:
                if not held:
                    continue
                gone = self._write(lambda db: db.execute(
                    f"DELETE FROM artifacts WHERE key = :key AND key NOT IN ({_LIVE})",
                    {"key": key, "cutoff": cutoff}).rowcount)
                if gone:
                    self._write(lambda db: db.execute("DELETE FROM deps WHERE parent = ?", (key,)))
                    path = self._object_dir(key)
                    report.freed_bytes += _tree_size(path)
                    _rmtree(path)
                    report.artifacts.append(key)
        record_sql = f"FROM records WHERE created < :cutoff AND key NOT IN ({_LIVE})"
        run_sql = "FROM runs WHERE started < :cutoff"
        if dry_run:
            report.records = db.execute(f"SELECT count(*) {record_sql}", {"cutoff": cutoff}).fetchone()[0]
            report.runs = db.execute(f"SELECT count(*) {run_sql}", {"cutoff": cutoff}).fetchone()[0]
        else:
            report.records = self._write(lambda db: db.execute(f"DELETE {record_sql}", {"cutoff": cutoff}).rowcount)
            self._write(lambda db: db.execute(
                "DELETE FROM deps WHERE parent NOT IN (SELECT key FROM artifacts UNION SELECT key FROM records)"))
            report.runs = self._write(lambda db: db.execute(f"DELETE {run_sql}", {"cutoff": cutoff}).rowcount)
        for path in self.garbage():
            key = path.name.split(".")[0]
            if not is_key(key):
                continue
            with self._key_lock(key, blocking=False) as held:
                # Held: someone is building this key right now; its tmp dir is live.
                if held and (path.parent == self.tmp or self.get(key) is None):
                    report.garbage_dirs.append(str(path.relative_to(self.home)))
                    if not dry_run:
                        report.freed_bytes += _tree_size(path)
                        _rmtree(path)
        return report


def _add_deps(db: sqlite3.Connection, parent: str, children: Iterable[str]) -> None:
    db.executemany("INSERT OR IGNORE INTO deps VALUES (?, ?)", [(parent, c) for c in children if c != parent])


def _check_key(key: str) -> None:
    # The key is a path component: only a hex sha256 may become one.
    if not isinstance(key, str) or not is_key(key):
        raise StoreError(f"artifact key must be a sha256 hex string (use artifact_key), got {key!r:.80}")


def _check_record_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise StoreError(f"record key must be a non-empty string of at most 1024 characters, got {key!r:.80}")
    return key
