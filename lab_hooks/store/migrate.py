"""Move a store to another backend: `lab-hooks store migrate --to postgresql://…?artifacts=/mnt/lab-store`.

Everything is carried: artifacts (each re-hashed on arrival against the
source's manifest), records, dependencies, recent runs (gc's keep window) and,
last, the refs, so the target never names what it does not hold yet. The
source is read under its jobs lock (no job changes it meanwhile) and left
untouched. An interrupted migration is resumed by running it again: what
arrived is kept. Any direction works, so the same command backs a PostgreSQL
store up into a local one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Callable

from lab_hooks.store.keys import canonical_json
from lab_hooks.store.manifest import StoreError, Transaction
from lab_hooks.store.store import Store

PAGE = 1000


@dataclass
class MigrateReport:
    artifacts: int = 0
    already: int = 0
    records: int = 0
    runs: int = 0
    refs: int = 0
    bytes: int = 0


def migrate(source: Store, target: Store, say: Callable[[str], None] = lambda _: None) -> MigrateReport:
    if source.url == target.url:
        raise StoreError(f"{target.db.where}: the target is the source store")
    report = MigrateReport()
    with source.exclusive():
        refs = source.refs()
        clash = {n: k for n, k in target.refs().items() if refs.get(n) != k}
        if clash:
            name = sorted(clash)[0]
            raise StoreError(f"{target.db.where} already has ref {name} -> {clash[name][:12]}, which the source "
                             "does not: migrate into an empty store")
        for art in source.artifacts():
            if target.info(art.key) is not None:
                report.already += 1
                continue
            _copy_artifact(source, target, art)
            report.artifacts += 1
            report.bytes += art.size
            say(f"copied {art.key[:12]} {art.kind} ({art.nfiles} files)")
        report.records = _copy_records(source, target)
        report.runs = _copy_runs(source, target)
        target.set_refs(refs)
        report.refs = len(refs)
    return report


def _copy_artifact(source: Store, target: Store, art) -> None:
    src = source.get(art.key)  # StoreCorrupt: a changed artifact is not carried over
    with target._key_lock(art.key):
        tmp = target._new_tmp(art.key)
        try:
            # copyfile: the bytes, not the source's read-only modes (commit seals them again)
            shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=shutil.copyfile)
            target._commit(art.key, art.kind, canonical_json(art.meta), tmp, source.deps(art.key), created=art.created)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    hashes = "SELECT path, sha256, size FROM files WHERE key = ? ORDER BY path"
    if source.db.read(hashes, (art.key,)) != target.db.read(hashes, (art.key,)):
        target.remove(art.key)
        raise StoreError(f"artifact {art.key[:12]} changed while it was copied (its hashes differ): not migrated")


def _copy_records(source: Store, target: Store) -> int:
    count, last = 0, ""
    while True:
        rows = source.db.read("SELECT key, value, created FROM records WHERE key > ? ORDER BY key LIMIT ?", (last, PAGE))
        if not rows:
            return count
        deps = [tuple(d) for d in source.db.read(
            "SELECT parent, child FROM deps WHERE parent > ? AND parent <= ? ORDER BY parent, child",
            (last, rows[-1][0]))]

        def put(tx: Transaction, rows=rows, deps=deps) -> None:
            tx.executemany("INSERT INTO records VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                           "SET value = excluded.value, created = excluded.created", [tuple(r) for r in rows])
            tx.executemany("INSERT INTO deps VALUES (?, ?) ON CONFLICT DO NOTHING", deps)

        target.db.write(put)
        count += len(rows)
        last = rows[-1][0]


def _copy_runs(source: Store, target: Store) -> int:
    """Runs and what they used (gc keeps that for its window); carried once, by their start and meta."""
    have = {(kind, meta, started) for kind, meta, started in target.db.read("SELECT kind, meta, started FROM runs")}
    count = 0
    for run_id, kind, meta, started, finished, status in source.db.read(
            "SELECT id, kind, meta, started, finished, status FROM runs ORDER BY id"):
        if (kind, meta, started) in have:
            continue
        uses = [r[0] for r in source.db.read("SELECT key FROM run_uses WHERE run = ? ORDER BY key", (run_id,))]

        def put(tx: Transaction, row=(kind, meta, started, finished, status), uses=uses) -> None:
            new = tx.execute("INSERT INTO runs (kind, meta, started, finished, status) VALUES (?, ?, ?, ?, ?) "
                             "RETURNING id", row).fetchall()[0][0]
            tx.executemany("INSERT INTO run_uses VALUES (?, ?)", [(new, k) for k in uses])

        target.db.write(put)
        count += 1
    return count
