"""The store: a manifest (SQLite here, or PostgreSQL for several runners) beside immutable artifact directories.

Layout under the store's home (default `LAB_HOME/store`; with PostgreSQL, the
shared directory named by `LAB_STORE_URL`'s `artifacts=`):

    manifest.sqlite         SQLite only: artifacts, their files' sha256, JSON records, refs, runs
    objects/ab/<key>/       one complete artifact per key (files made read-only)
    tmp/<key>.<pid>.<rnd>/  artifacts being built
    locks/<key>.lock        SQLite only: one flock per key (PostgreSQL: advisory locks)

The manifest is the only truth about completeness: a directory under objects/
counts only once its row is in `artifacts`, and the row is written after the
files were fsynced and the directory renamed into place. A crash at any point
leaves either nothing, a tmp dir, or an unregistered directory, all of which
look unfinished, are rebuilt over, and are removed by `gc`.

What `get` serves is what was registered: each file's size, mtime, ctime and
inode (its stamp) must be those seen when its content was last hashed; any
change, however made, costs one full re-hash, and a mismatch is never served
(StoreCorrupt). Re-hashing multi-GB checkpoints on every call would cost more
than the jobs that read them; a stat per file costs microseconds, and ctime
cannot be set back by a writer short of changing the system clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from lab_hooks.home import lab_home
from lab_hooks.store.keys import canonical_json, is_key, sha256_file
from lab_hooks.store.manifest import POSTGRES_SCHEMES, Manifest, SqliteManifest, StoreError, Transaction, redact

# What gc must keep: anything a ref names, a run started since `cutoff` used, or
# that was made since `cutoff`, and everything those depend on (a replay record
# lists the data it replays).
_LIVE = """WITH RECURSIVE live(key) AS (
    SELECT key FROM (SELECT key FROM refs UNION
                     SELECT u.key FROM run_uses u JOIN runs r ON r.id = u.run WHERE r.started >= :cutoff UNION
                     SELECT key FROM artifacts WHERE created >= :cutoff UNION
                     SELECT key FROM records WHERE created >= :cutoff) AS roots
    UNION SELECT d.child FROM deps d JOIN live ON d.parent = live.key)
  SELECT key FROM live"""
_KNOWN = "SELECT key FROM artifacts UNION SELECT key FROM records"
DEFAULT_KEEP_DAYS = 7.0
JOBS_LOCK = "jobs"  # not a key, so never taken for garbage


class StoreBusy(StoreError):
    """`gc` found a job running: it may be about to name something gc would delete."""


class StoreCorrupt(StoreError):
    """An artifact's files are not what was registered: it is not served."""


class RefsMoved(StoreError):
    """A compare-and-swap of refs found one moved since the caller read it: nothing changed."""


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
        self.store.db.write(lambda tx: tx.executemany(
            "INSERT INTO run_uses VALUES (?, ?) ON CONFLICT DO NOTHING", [(self.id, k) for k in keys]))


def open_manifest(url: str | None, home: Path | None) -> tuple[Manifest, Path]:
    """The manifest named by `url` and the artifacts directory it goes with.

    url None/empty: SQLite in `home`. `sqlite:///dir`: SQLite in dir.
    `postgresql://…?artifacts=/shared/dir`: PostgreSQL, artifacts in dir.
    """
    if not url:
        if home is None:
            raise StoreError("no store: give a home directory or a LAB_STORE_URL")
        return SqliteManifest(home), home
    if url.startswith("sqlite://"):
        home = Path(url[len("sqlite://"):])
        if not home.is_absolute():
            raise StoreError(f"{url}: a SQLite store URL names an absolute directory: sqlite:///path/to/store")
        home.mkdir(parents=True, exist_ok=True)
        return SqliteManifest(home), home
    if url.startswith(POSTGRES_SCHEMES):
        from lab_hooks.store.postgres import PostgresManifest  # the driver only when asked for

        manifest = PostgresManifest(url)
        return manifest, manifest.artifacts
    raise StoreError(f"LAB_STORE_URL={redact(url)}: expected postgresql://…?artifacts=/shared/dir or sqlite:///dir")


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


def _visible(path: Path) -> bool:
    """Whether the directory exists, looking again when it seems not to: an NFS client may
    cache a miss for seconds after another runner renamed the directory into place."""
    if path.is_dir():
        return True
    try:
        return path.name in os.listdir(path.parent) and path.is_dir()
    except (FileNotFoundError, NotADirectoryError):
        return False


def _stamp(path: Path) -> str:
    """A hash of every file's path, type, size, mtime, ctime and inode under `path`."""
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        try:
            st = p.lstat()
        except OSError:
            return "unreadable"
        if not stat.S_ISDIR(st.st_mode):
            digest.update(f"{p.relative_to(path).as_posix()}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0"
                          f"{st.st_ctime_ns}\0{st.st_ino}\n".encode())
    return digest.hexdigest()


class Store:
    """Content-keyed artifacts, JSON records and refs; safe across processes (and machines, on PostgreSQL).

    `Store()` opens `LAB_STORE_URL` (unset: the SQLite store in LAB_HOME/store);
    `Store(path)` the SQLite store in `path`; `Store(url)` any store URL.
    One `Store` may be shared by the threads of a process (one connection per
    thread) and survives `fork` (a child opens its own connection).
    """

    def __init__(self, home: str | os.PathLike | None = None, url: str | None = None):
        if isinstance(home, str) and "://" in home:  # Store("postgresql://…") means the URL
            home, url = None, home
        if url is None and home is None:
            url = os.environ.get("LAB_STORE_URL") or None
            home = None if url else lab_home() / "store"
        self.db: Manifest
        self.db, self.home = open_manifest(url, Path(home) if home is not None else None)
        self.url = self.db.url
        self.objects = self.home / "objects"
        self.tmp = self.home / "tmp"
        for d in (self.objects, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._verified: dict[str, str] = {}  # key -> the stamp this process saw hash clean
        self._locks = threading.local()

    def __reduce__(self):
        # Pickles as its URL (for worker processes): connections are per process.
        return (Store, (None, self.url))

    def close(self) -> None:
        self.db.close()

    def lock(self, key: str, blocking: bool = True):
        """Hold `key`'s lock for a block: the work for one key runs once at a time, across every
        process and runner sharing the store (training into a work dir, an evaluation whose
        records the next caller reuses). A dead holder's lock is released. With blocking=False
        the block gets False instead of waiting. Reentrant within a thread: `build`/`ensure` of
        the same key inside the block (check, compute, then register) do not wait for it."""
        _check_key(key)
        return self._key_lock(key, blocking=blocking)

    @contextmanager
    def _key_lock(self, key: str, blocking: bool = True, shared: bool = False) -> Iterator[bool]:
        """The lock of `key` (or JOBS_LOCK) across every process sharing the store; yields False
        instead of waiting with blocking=False. A dead holder's lock is released."""
        held = self._held()
        if key in held and not shared:  # this thread holds it already (a flock would wait for itself)
            yield True
            return
        with self.db.lock(key, blocking=blocking, shared=shared) as got:
            if got and not shared:
                held.add(key)
            try:
                yield got
            finally:
                held.discard(key)

    def _held(self) -> set[str]:
        """The keys whose lock this thread of this process holds."""
        if getattr(self._locks, "pid", None) != os.getpid():
            self._locks.keys, self._locks.pid = set(), os.getpid()
        return self._locks.keys

    # -- artifacts ---------------------------------------------------------

    def _object_dir(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def get(self, key: str) -> Path | None:
        """The directory of the complete artifact `key`, or None; StoreCorrupt if its files changed.

        A file whose stamp differs from the one last hashed clean is hashed
        again (first use after a migration or restore, or a tamper): matching
        content is served and its new stamp kept, anything else never is.
        """
        _check_key(key)
        row = self.db.read("SELECT stamp FROM artifacts WHERE key = ?", (key,))
        path = self._object_dir(key)
        if not row or not _visible(path):
            return None
        stamp = _stamp(path)
        if stamp in (row[0][0], self._verified.get(key)):
            return path
        problems = self._check_files(key, path)
        if problems:
            raise StoreCorrupt(f"artifact {key[:12]} is not served: {problems[0].path}: {problems[0].message}"
                               f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
                               "`lab-hooks store verify` lists what changed")
        self.db.write(lambda tx: tx.execute("UPDATE artifacts SET stamp = ? WHERE key = ?", (stamp, key)))
        self._verified[key] = stamp
        return path

    def info(self, key: str) -> Artifact | None:
        rows = self.db.read("SELECT key, kind, meta, created, size, nfiles FROM artifacts WHERE key = ?", (key,))
        return self._artifact(rows[0]) if rows else None

    def artifacts(self, kind: str | None = None) -> list[Artifact]:
        sql = "SELECT key, kind, meta, created, size, nfiles FROM artifacts"
        rows = self.db.read(sql + (" WHERE kind = ? ORDER BY created, key" if kind else " ORDER BY created, key"),
                            (kind,) if kind else ())
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

    def _commit(self, key: str, kind: str, meta_json: str, tmp: Path, deps: Iterable[str] = (),
                created: float | None = None) -> Path:
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
        if self.db.read("SELECT 1 FROM artifacts WHERE key = ?", (key,)):
            if _visible(final):  # built meanwhile (same key, same content): keep the first
                print(f"lab-hooks store: {kind} {key[:12]} was built twice, the second time in vain: build it "
                      "with Store.ensure, or check for it under Store.lock", file=sys.stderr)
                return final
            self.db.write(lambda tx: tx.execute("DELETE FROM artifacts WHERE key = ?", (key,)))
        if final.exists():
            _rmtree(final)  # unregistered: a crash between rename and manifest row
        final.parent.mkdir(exist_ok=True)
        os.rename(tmp, final)  # readers never see a partial artifact: it appears whole, or not at all
        _fsync_dir(final.parent)
        size = sum(f[3] for f in files)
        stamp = _stamp(final)

        def register(tx: Transaction) -> None:
            tx.execute("INSERT INTO artifacts (key, kind, meta, created, size, nfiles, stamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (key, kind, meta_json, time.time() if created is None else created, size, len(files), stamp))
            tx.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", files)
            _add_deps(tx, key, deps)

        self.db.write(register)
        self._verified[key] = stamp
        return final

    # -- records -----------------------------------------------------------

    def record_get(self, key: str) -> Any | None:
        rows = self.db.read("SELECT value FROM records WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def record_get_many(self, keys: list[str]) -> dict[str, Any]:
        """The records that exist among `keys` (absent keys are left out)."""
        out: dict[str, Any] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.read(f"SELECT key, value FROM records WHERE key IN ({marks})", chunk):
                out[key] = json.loads(value)
        return out

    def record_count(self) -> int:
        return self.db.read("SELECT count(*) FROM records")[0][0]

    def record_put(self, key: str, value: Any, deps: Iterable[str] = ()) -> None:
        """Store a JSON value; `deps` are keys it names that gc must keep while it lives."""
        self.record_put_many({key: value}, {key: deps})

    def record_put_many(self, items: dict[str, Any], deps: dict[str, Iterable[str]] | None = None,
                        created: float | None = None) -> None:
        """Store JSON values under their keys, all in one transaction."""
        now = time.time() if created is None else created
        # In key order: two writers of overlapping batches lock rows in one order, never a deadlock.
        rows = sorted((_check_record_key(k), canonical_json(v), now) for k, v in items.items())

        def put(tx: Transaction) -> None:
            tx.executemany("INSERT INTO records VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                           "SET value = excluded.value, created = excluded.created", rows)
            for parent, children in sorted((deps or {}).items()):
                _add_deps(tx, parent, children)

        self.db.write(put)

    def deps(self, key: str) -> list[str]:
        """The keys `key` depends on."""
        return [r[0] for r in self.db.read("SELECT child FROM deps WHERE parent = ? ORDER BY child", (key,))]

    def resolve(self, prefix: str) -> str:
        """The one artifact or record key starting with `prefix` (as `store ls` shows 12 characters)."""
        found = self.db.read("SELECT key FROM artifacts WHERE substr(key, 1, ?) = ? UNION "
                             "SELECT key FROM records WHERE substr(key, 1, ?) = ? ORDER BY 1 LIMIT 2",
                             (len(prefix), prefix, len(prefix), prefix)) if prefix else []
        if len(found) != 1:
            raise StoreError(f"{prefix!r:.80}: {'names no artifact or record' if not found else 'is ambiguous'} "
                             f"in {self.db.where}")
        return found[0][0]

    # -- refs --------------------------------------------------------------

    def get_ref(self, name: str) -> str | None:
        rows = self.db.read("SELECT key FROM refs WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def refs(self, prefix: str = "") -> dict[str, str]:
        return dict(self.db.read("SELECT name, key FROM refs WHERE substr(name, 1, ?) = ? ORDER BY name",
                                 (len(prefix), prefix)))

    def set_ref(self, name: str, key: str) -> None:
        self.set_refs({name: key})

    def set_refs(self, refs: dict[str, str], expect: dict[str, str | None] | None = None) -> None:
        """Point several refs at existing artifacts or records in ONE transaction.

        A crash leaves all of them old or all new. `expect` (name -> key or
        None for absent) makes it a compare-and-swap: RefsMoved if another
        process moved a ref since the caller read it.
        """
        def swap(tx: Transaction) -> None:
            for name, old in (expect or {}).items():
                row = tx.execute("SELECT key FROM refs WHERE name = ?", (name,)).fetchone()
                if (row[0] if row else None) != old:
                    raise RefsMoved(f"ref {name} moved to {row[0][:12] if row else 'nothing'} "
                                     f"(expected {old[:12] if old else 'nothing'})")
            now = time.time()
            for name, key in refs.items():
                if not name or not isinstance(name, str):
                    raise StoreError("ref names are non-empty strings")
                known = tx.execute("SELECT 1 FROM artifacts WHERE key = ? UNION ALL "
                                   "SELECT 1 FROM records WHERE key = ?", (key, key)).fetchone()
                if not known:
                    raise StoreError(f"ref {name}: no artifact or record {key[:12]} in the store")
                tx.execute("INSERT INTO refs VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                           "SET key = excluded.key, updated = excluded.updated", (name, key, now))

        self.db.write(swap, exclusive=True)

    def delete_refs(self, *names: str) -> int:
        """Delete refs; how many existed."""
        return self.db.write(lambda tx: tx.executemany("DELETE FROM refs WHERE name = ?", [(n,) for n in names]).rowcount,
                             exclusive=True)

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
            run_id = self.db.write(lambda tx: tx.execute(
                "INSERT INTO runs (kind, meta, started, status) VALUES (?, ?, ?, 'running') RETURNING id",
                (kind, meta_json, time.time())).fetchall()[0][0])
            status = "failed"
            try:
                yield Run(run_id, self)
                status = "ok"
            finally:
                self.db.write(lambda tx: tx.execute("UPDATE runs SET finished = ?, status = ? WHERE id = ?",
                                                    (time.time(), status, run_id)))

    # -- maintenance -------------------------------------------------------

    def _check_files(self, key: str, path: Path) -> list[Problem]:
        """Re-hash one artifact's files against the manifest: what is missing, changed or extra."""
        want = {rel: (sha, size) for rel, sha, size in
                self.db.read("SELECT path, sha256, size FROM files WHERE key = ?", (key,))}
        problems = []
        nfiles = self.db.read("SELECT nfiles FROM artifacts WHERE key = ?", (key,))
        if nfiles and len(want) != nfiles[0][0]:
            problems.append(Problem(key, "", f"manifest lists {len(want)} files, expected {nfiles[0][0]}"))
        have = {p.relative_to(path).as_posix(): p for p in path.rglob("*") if not p.is_dir()}
        for rel in sorted(set(have) - set(want)):
            problems.append(Problem(key, rel, "extra file, not in the manifest"))
        for rel, (sha, size) in sorted(want.items()):
            file = have.get(rel)
            if file is None or file.is_symlink() or not file.is_file():
                problems.append(Problem(key, rel, "missing"))
            elif file.stat().st_size != size:
                problems.append(Problem(key, rel, f"size {file.stat().st_size}, recorded {size}"))
            elif sha256_file(file) != sha:
                problems.append(Problem(key, rel, "content changed (sha256 differs)"))
        return problems

    def verify(self) -> list[Problem]:
        """Re-hash every registered file; a list of what is missing, changed or extra."""
        problems = [Problem("manifest", self.db.where, p) for p in self.db.problems()]
        for art in self.artifacts():
            if not art.path.is_dir():
                problems.append(Problem(art.key, "", "registered but its directory is missing"))
            else:
                problems += self._check_files(art.key, art.path)
        for name, key in self.refs().items():
            if self.info(key) is None and self.record_get(key) is None:
                problems.append(Problem(key, "", f"ref {name} names nothing in the store (rebuild it or delete the ref)"))
        for parent, child in self.db.read(
                f"SELECT parent, child FROM deps WHERE parent IN ({_KNOWN}) AND child NOT IN ({_KNOWN}) "
                "ORDER BY parent, child"):
            problems.append(Problem(child, "", f"missing, but {parent[:12]} depends on it (rebuild it)"))
        return problems

    def remove(self, key: str) -> bool:
        """Unregister and delete one artifact (e.g. one `verify` found corrupt).

        The row goes first, so a crash in between leaves only garbage. False
        if a builder holds the key; StoreError if a ref names it (delete the
        ref first: removing what main names would break every later job).
        """
        _check_key(key)
        with self._key_lock(key, blocking=False) as held:
            if not held:
                return False

            def unregister(tx: Transaction) -> None:
                names = [r[0] for r in tx.execute("SELECT name FROM refs WHERE key = ? ORDER BY name", (key,)).fetchall()]
                if names:
                    raise StoreError(f"artifact {key[:12]} is named by ref {', '.join(names)}: not removed")
                tx.execute("DELETE FROM artifacts WHERE key = ?", (key,))

            self.db.write(unregister, exclusive=True)
            self._verified.pop(key, None)
            _rmtree(self._object_dir(key))
            return True

    def garbage(self) -> list[Path]:
        """Directories that are no complete artifact: dead builders' tmp dirs, unregistered objects."""
        registered = {r[0] for r in self.db.read("SELECT key FROM artifacts")}
        out = sorted(self.tmp.iterdir())
        out += sorted(p for p in self.objects.glob("??/*") if p.name not in registered)
        return out

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No job runs meanwhile, on any machine sharing the store (gc, migrate); StoreBusy if one does."""
        with self._key_lock(JOBS_LOCK, blocking=False) as held:
            if not held:
                raise StoreBusy(f"{self.db.where}: a job (pr, promote, generate, train, eval) is using the store; "
                                "it is left alone while one runs: try again when it has finished")
            yield

    def gc(self, keep_days: float = DEFAULT_KEEP_DAYS, dry_run: bool = False) -> GcReport:
        """Delete what no ref names and no run of the last `keep_days` used.

        Artifacts and records younger than `keep_days` are kept too, so a job
        that has just built something but not yet set a ref never loses it.
        Keys being built right now (lock held) are skipped. StoreBusy while a
        job (`run`) is running: it may still be about to name what looks dead.
        """
        if dry_run:
            return self._gc(keep_days, dry_run)
        with self.exclusive():
            return self._gc(keep_days, dry_run)

    def _gc(self, keep_days: float, dry_run: bool) -> GcReport:
        cutoff = time.time() - keep_days * 86400
        report = GcReport()
        dead = [r[0] for r in self.db.read(
            f"SELECT key FROM artifacts WHERE created < :cutoff AND key NOT IN ({_LIVE}) ORDER BY key", {"cutoff": cutoff})]
        for key in dead:
            if dry_run:
                report.artifacts.append(key)
                continue
            with self._key_lock(key, blocking=False) as held:
                if not held:
                    continue

                def delete(tx: Transaction, key: str = key) -> int:  # with no ref move in between
                    gone = tx.execute(f"DELETE FROM artifacts WHERE key = :key AND key NOT IN ({_LIVE})",
                                      {"key": key, "cutoff": cutoff}).rowcount
                    tx.execute("DELETE FROM deps WHERE parent = ?", (key,))
                    return gone

                if self.db.write(delete, exclusive=True):
                    path = self._object_dir(key)
                    report.freed_bytes += _tree_size(path)
                    _rmtree(path)
                    report.artifacts.append(key)
        record_sql = f"FROM records WHERE created < :cutoff AND key NOT IN ({_LIVE})"
        run_sql = "FROM runs WHERE started < :cutoff"
        if dry_run:
            report.records = self.db.read(f"SELECT count(*) {record_sql}", {"cutoff": cutoff})[0][0]
            report.runs = self.db.read(f"SELECT count(*) {run_sql}", {"cutoff": cutoff})[0][0]
        else:
            report.records = self.db.write(lambda tx: tx.execute(f"DELETE {record_sql}", {"cutoff": cutoff}).rowcount,
                                           exclusive=True)
            self.db.write(lambda tx: tx.execute(f"DELETE FROM deps WHERE parent NOT IN ({_KNOWN})"))
            report.runs = self.db.write(lambda tx: tx.execute(f"DELETE {run_sql}", {"cutoff": cutoff}).rowcount)
        for path in self.garbage():
            key = path.name.split(".")[0]
            if not is_key(key):
                continue
            with self._key_lock(key, blocking=False) as held:
                # Held: someone is building this key right now; its tmp dir is live.
                if held and (path.parent == self.tmp or not self.db.read("SELECT 1 FROM artifacts WHERE key = ?", (key,))):
                    report.garbage_dirs.append(str(path.relative_to(self.home)))
                    if not dry_run:
                        report.freed_bytes += _tree_size(path)
                        _rmtree(path)
        return report


def _add_deps(tx: Transaction, parent: str, children: Iterable[str]) -> None:
    tx.executemany("INSERT INTO deps VALUES (?, ?) ON CONFLICT DO NOTHING",
                   sorted({(parent, c) for c in children if c != parent}))


def _check_key(key: str) -> None:
    # The key is a path component: only a hex sha256 may become one.
    if not isinstance(key, str) or not is_key(key):
        raise StoreError(f"artifact key must be a sha256 hex string (use artifact_key), got {key!r:.80}")


def _check_record_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise StoreError(f"record key must be a non-empty string of at most 1024 characters, got {key!r:.80}")
    return key
