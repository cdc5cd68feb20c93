"""The store's manifest on PostgreSQL: several runners, one truth.

    LAB_STORE_URL=postgresql://lab@db.internal/lab?artifacts=/mnt/lab-store

The manifest (refs, records, artifacts' file hashes, runs, locks) lives in the
database; the artifacts live in `artifacts`, a directory every runner mounts
(NFS, CephFS). The guarantees of the SQLite store hold across machines:

- a write is one transaction; ref moves and gc's deletions also take one
  transaction-scoped advisory lock, so a compare-and-swap reads and writes
  the refs with no other ref move in between;
- the lock on a key being built, and the jobs lock, are session advisory locks
  on the holder's connection: held for the whole build, released by the server
  when the process dies and its connection drops (keepalives bound how long a
  vanished machine keeps them);
- the artifacts directory holds a STORE_ID file that the database names too: a
  runner whose shared mount is missing, or is another store's, stops at once
  instead of rebuilding everything beside an empty directory.

Needs the `postgres` extra (psycopg 3); nothing else in lab-hooks imports it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lab_hooks.store.manifest import SCHEMA_VERSION, StoreError, Transaction, redact, schema_statements

try:
    import psycopg
    from psycopg import errors
except ImportError:  # pragma: no cover - the message is the behaviour
    psycopg = None

STORE_ID_FILE = "STORE_ID"
RETRIES = 5  # a deadlock or serialization failure aborts one transaction: run it again
# Client and server keepalives: a runner that vanishes (power, network) loses its
# locks within about a minute instead of when the kernel gives up (hours).
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
SERVER_KEEPALIVES = ("SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; "
                     "SET tcp_keepalives_count = 3")


def lock_id(name: str) -> int:
    """The advisory lock number of a lock name (64 bits of its sha256)."""
    return int.from_bytes(hashlib.sha256(f"lab-hooks:{name}".encode()).digest()[:8], "big", signed=True)


MANIFEST_LOCK = lock_id("manifest")  # transaction-scoped: exclusive writes, schema creation


def split_url(url: str) -> tuple[str, Path]:
    """(the connection URL, the artifacts directory) of a store URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    artifacts = [v for k, v in query if k == "artifacts"]
    if len(artifacts) != 1 or not Path(artifacts[0]).is_absolute():
        raise StoreError(f"LAB_STORE_URL={redact(url)}: name the artifacts directory every runner mounts, "
                         "once, as an absolute path: postgresql://…/db?artifacts=/mnt/lab-store")
    rest = urlencode([(k, v) for k, v in query if k != "artifacts"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), Path(artifacts[0])


_PARAM = re.compile(r"\?|:([A-Za-z_]\w*)")


def translate(sql: str) -> str:
    """The store's dialect (`?`, `:name`) in psycopg's (`%s`, `%(name)s`)."""
    return _PARAM.sub(lambda m: f"%({m.group(1)})s" if m.group(1) else "%s", sql)


class _Tx:
    def __init__(self, conn: Any, sql: Callable[[str], str]):
        self.conn, self.sql = conn, sql

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(self.sql(sql), params)

    def executemany(self, sql: str, rows: Any) -> Any:
        cur = self.conn.cursor()
        cur.executemany(self.sql(sql), list(rows))
        return cur


class PostgresManifest:
    """One connection per thread (and per process: a forked child opens its own)."""

    def __init__(self, url: str):
        if psycopg is None:
            raise StoreError("a postgresql:// store needs the PostgreSQL driver: pip install 'lab-hooks[postgres]'")
        self.url = url
        self.conninfo, self.artifacts = split_url(url)
        self.where = redact(url)
        self._local = threading.local()
        self._sql_cache: dict[str, str] = {}
        self._conn()
        self._bind()

    # -- connections -------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid() and not conn.closed:
            return conn
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=30, **KEEPALIVES)
            conn.execute(SERVER_KEEPALIVES)
        except psycopg.Error as exc:
            raise self._error(exc) from None
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _error(self, exc: Exception) -> StoreError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return StoreError(f"{self.where}: {first}")

    def _sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = self._sql_cache[sql] = translate(sql)
        return out

    def _bind(self) -> None:
        """Create or check the schema, and tie the database to its artifacts directory."""
        def setup(tx: Transaction) -> None:
            for statement in schema_statements("BIGSERIAL PRIMARY KEY"):
                tx.execute(statement)
            meta = dict(tx.execute("SELECT name, value FROM store_meta").fetchall())
            version = int(meta.get("schema", SCHEMA_VERSION))
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.where}: manifest schema v{version}, this lab-hooks reads v{SCHEMA_VERSION}")
            tx.execute("INSERT INTO store_meta VALUES ('schema', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                       (str(SCHEMA_VERSION),))
            mark = self.artifacts / STORE_ID_FILE
            have = mark.read_text().strip() if mark.is_file() else None
            want = meta.get("store_id")
            if want is None and have is None:
                want = secrets.token_hex(16)
                self.artifacts.mkdir(parents=True, exist_ok=True)
                tmp = mark.with_name(f".{STORE_ID_FILE}.{os.getpid()}")
                tmp.write_text(want + "\n")
                os.replace(tmp, mark)
                tx.execute("INSERT INTO store_meta VALUES ('store_id', ?)", (want,))
            elif want is None:
                raise StoreError(f"{self.artifacts} belongs to another store (its {STORE_ID_FILE} is {have[:12]}, "
                                 f"the database {self.where} has none): give each store its own directory")
            elif have != want:
                raise StoreError(f"{self.artifacts} is not this store's artifacts directory ({STORE_ID_FILE} "
                                 f"{'missing' if have is None else have[:12]}, {self.where} expects {want[:12]}): "
                                 "is the shared directory mounted here?")

        self.write(setup, exclusive=True)

    # -- the interface -------------------------------------------------------

    def read(self, sql: str, params: Any = ()) -> list[tuple]:
        try:
            return self._conn().execute(self._sql(sql), params).fetchall()
        except psycopg.OperationalError as exc:
            raise self._error(exc) from None

    def write(self, fn: Callable[[Transaction], Any], exclusive: bool = False) -> Any:
        conn = self._conn()
        for attempt in range(RETRIES):
            try:
                with conn.transaction():
                    if exclusive:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MANIFEST_LOCK,))
                    return fn(_Tx(conn, self._sql))
            except (errors.DeadlockDetected, errors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
            except psycopg.OperationalError as exc:
                raise self._error(exc) from None
        raise AssertionError("unreachable")

    @contextmanager
    def lock(self, name: str, blocking: bool = True, shared: bool = False) -> Iterator[bool]:
        """A session advisory lock on this thread's connection (the server drops it with the connection)."""
        kind = "_shared" if shared else ""
        conn = self._conn()
        number = lock_id(name)
        try:
            if blocking:
                conn.execute(f"SELECT pg_advisory_lock{kind}(%s)", (number,))
            elif not conn.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", (number,)).fetchone()[0]:
                yield False
                return
        except psycopg.OperationalError as exc:
            raise self._error(exc) from None
        try:
            yield True
        finally:
            if not conn.closed:
                try:
                    conn.execute(f"SELECT pg_advisory_unlock{kind}(%s)", (number,))
                except psycopg.OperationalError:
                    pass  # the connection is gone, and the lock with it

    def problems(self) -> list[str]:
        return []  # the server checks its own pages; verify re-hashes the artifacts

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None
