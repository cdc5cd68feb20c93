"""SQLite databases shared by processes: WAL mode, opened under a flock.

The one way lab-hooks opens its SQLite files (the run store's manifest, the hook's
seed index). Switching a database to WAL takes an exclusive lock for which SQLite's
busy timeout does not wait: processes opening one new database at once (runners
sharing a store, pre-commit's parallel hook processes) would see "database is
locked". Opening under a flock beside it serializes just that. Stdlib only: the hook
path imports it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: nothing is locked (opening is then not serialized)
    fcntl = None


@contextmanager
def flock(path: Path | str, blocking: bool = True, shared: bool = False) -> Iterator[bool]:
    """A flock on `path` (created if need be) while the block runs; the kernel drops it
    when the process dies. With blocking=False, yields False instead of waiting for a holder."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
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


def connect(path: Path | str, timeout: float, prepare: Callable[[sqlite3.Connection], None] | None = None
            ) -> sqlite3.Connection:
    """A connection in WAL mode, in autocommit (transactions are `transaction`'s), then `prepare`d
    (a schema check). synchronous=NORMAL: a killed process loses nothing committed; a power cut
    may lose the last transactions but never corrupts the file. No lock: `open_wal` takes it."""
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if prepare is not None:
            prepare(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_wal(path: Path | str, lock: Path | str, timeout: float,
             prepare: Callable[[sqlite3.Connection], None] | None = None, disposable: bool = False
             ) -> sqlite3.Connection:
    """`connect` under a flock on `lock`. A `disposable` database (a cache) whose file is
    damaged is deleted and made anew, under the same flock; a busy or locked one never is."""
    with flock(lock):
        try:
            return connect(path, timeout, prepare)
        except sqlite3.OperationalError:  # busy or locked after all: not damage
            raise
        except sqlite3.DatabaseError:
            if not disposable:
                raise
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            return connect(path, timeout, prepare)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, its lock taken at once (BEGIN IMMEDIATE); rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
