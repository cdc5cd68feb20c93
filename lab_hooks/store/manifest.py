"""The manifest backends: where the store keeps its truth and takes its locks.

A manifest holds the store's tables (artifacts and their files' hashes,
records, refs, runs, deps) and its locks (one per key being built, and the
jobs lock that keeps `gc` from running beside a job). `Store` speaks to it in
one SQL dialect that SQLite and PostgreSQL both read (`?` and `:name`
parameters, `INSERT ... ON CONFLICT`, `RETURNING`, recursive CTEs):

    read(sql, params) -> rows               one statement, outside any transaction
    write(fn, exclusive=False) -> fn(tx)    one transaction, all or nothing;
        exclusive: serialised with every other exclusive one (ref moves, gc's deletes)
    lock(name, blocking=True, shared=False) a lock held until the block exits or the
        process dies, for every process of every machine sharing the store
    problems() -> [str]                     the engine's own integrity check

Two implementations, chosen by the store's URL (`lab_hooks.store.store.open_manifest`):
SQLite beside the artifacts (one machine; locks are flocks) and PostgreSQL
(several runners; locks are advisory locks, lab_hooks/store/postgres.py,
imported only then).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol

from lab_hooks.errors import LabHooksError
from lab_hooks.sqlite_wal import flock, open_wal, transaction

SCHEMA_VERSION = 3
# {id}: the runs table's generated key, spelled per engine.
SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, meta TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, size BIGINT NOT NULL, nfiles INTEGER NOT NULL, stamp TEXT);
CREATE TABLE IF NOT EXISTS files (
    key TEXT NOT NULL REFERENCES artifacts(key) ON DELETE CASCADE,
    path TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
    PRIMARY KEY (key, path));
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, key TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id {id}, kind TEXT NOT NULL, meta TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_uses (
    run BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,
    PRIMARY KEY (run, key));
CREATE INDEX IF NOT EXISTS run_uses_key ON run_uses(key);
CREATE TABLE IF NOT EXISTS deps (parent TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (parent, child));
CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(LabHooksError):
    """Misuse or an inconsistent store; the message is one line for the user."""


class Transaction(Protocol):
    def execute(self, sql: str, params: Any = ()) -> Any: ...
    def executemany(self, sql: str, rows: Any) -> Any: ...


class Manifest(Protocol):
    url: str  # how to open it again (a worker process, a pickled Store)
    where: str  # for messages: a path, or a URL without its password

    def read(self, sql: str, params: Any = ()) -> list[tuple]: ...
    def write(self, fn: Callable[[Transaction], Any], exclusive: bool = False) -> Any: ...
    def lock(self, name: str, blocking: bool = True, shared: bool = False) -> Any: ...
    def problems(self) -> list[str]: ...
    def close(self) -> None: ...


def schema_statements(id_column: str) -> list[str]:
    return [s.strip() for s in SCHEMA.format(id=id_column).split(";") if s.strip()]


class SqliteManifest:
    """`manifest.sqlite` (WAL) in the store's home; locks are flocks under `locks/`.

    One connection per thread; a forked child opens its own.
    """

    def __init__(self, home: Path):
        self.path = home / "manifest.sqlite"
        self.locks = home / "locks"
        self.locks.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite://{home.resolve()}"
        self.where = str(home)
        self._local = threading.local()
        self._conn()  # create the schema now: fail early on an unusable home

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        # lab_hooks.sqlite_wal: two runners opening a new store at once are serialized by the flock.
        conn = open_wal(self.path, self.locks / "manifest-open.lock", timeout=60, prepare=self._prepare)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys=ON")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._upgrade(conn)

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.where}: manifest schema v{version}, this lab-hooks reads v{SCHEMA_VERSION}")
            for statement in schema_statements("INTEGER PRIMARY KEY AUTOINCREMENT"):
                conn.execute(statement)  # older versions only lack tables and columns
            if "stamp" not in {row[1] for row in conn.execute("PRAGMA table_info(artifacts)")}:  # before v3
                conn.execute("ALTER TABLE artifacts ADD COLUMN stamp TEXT")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def read(self, sql: str, params: Any = ()) -> list[tuple]:
        return self._conn().execute(sql, params).fetchall()

    def write(self, fn: Callable[[Transaction], Any], exclusive: bool = False) -> Any:
        # BEGIN IMMEDIATE takes SQLite's one write lock: every write is exclusive here.
        with transaction(self._conn()) as db:
            return fn(db)

    def lock(self, name: str, blocking: bool = True, shared: bool = False) -> ContextManager[bool]:
        """A flock on `locks/<name>.lock`; the kernel drops it when the process dies.

        With blocking=False, yields False instead of waiting for a holder.
        """
        return flock(self.locks / f"{name}.lock", blocking, shared)

    def problems(self) -> list[str]:
        return [r[0] for r in self.read("PRAGMA quick_check") if r[0] != "ok"]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def redact(text: str) -> str:
    """A URL (or a message naming one) for logs: any password in it replaced."""
    return re.sub(r"([a-z]+://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)
