"""An on-disk index of a taxonomy's seed prompts, so a commit re-reads only changed leaves.

One SQLite database per taxonomy root under `LAB_HOME/seed-index/`. A leaf's rows
are keyed by its path, size and mtime_ns and replaced in one transaction when
the file changes, so a killed hook leaves the old rows or the new ones, never a
mix, and pre-commit's parallel hook processes share it safely. Questions are
found by token (an inverted index) and by normalized text, so a query touches
only its candidates, not the whole tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Mapping

from lab_hooks.checks.similarity import normalize, rouge_tokens
from lab_hooks.home import lab_home
from lab_hooks.sqlite_wal import connect, open_wal, transaction
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, Example, Leaf
from lab_hooks.taxonomy.load import LeafError, load_leaf_file

# Bump when what is stored (tokenizer, normalizer, layout) changes: the index is rebuilt.
FORMAT = 3
SCHEMA = """
CREATE TABLE leaves(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL,
                    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, seeds TEXT NOT NULL);
CREATE TABLE postings(token TEXT NOT NULL, leaf INTEGER NOT NULL, seed INTEGER NOT NULL,
                      length INTEGER NOT NULL);
CREATE INDEX postings_token ON postings(token);
CREATE INDEX postings_leaf ON postings(leaf);
CREATE TABLE norms(norm TEXT NOT NULL, leaf INTEGER NOT NULL, seed INTEGER NOT NULL);
CREATE INDEX norms_norm ON norms(norm);
CREATE INDEX norms_leaf ON norms(leaf);
CREATE TABLE embeddings(leaf INTEGER NOT NULL, seed INTEGER NOT NULL, vector BLOB NOT NULL,
                        PRIMARY KEY(leaf, seed));
"""
# Smaller taxonomies are indexed in memory on each run: reading them is as
# fast as keeping a database for them, and leaves nothing in LAB_HOME.
ON_DISK_FROM = 100
TIMEOUT_S = 30  # how long a write waits for another process's
Seed = tuple[int, int, str, int]  # line, col, prompt, its number of ROUGE tokens


def seed_prompt(leaf: Leaf, example: Example) -> str:
    """What a seed asks. A grounded skill's context is part of it: its seeds
    often share one question ("Summarize the text") over different contexts."""
    if example.context and leaf.kind is not None and leaf.kind.is_skill:
        return f"{example.context}\n{example.question}"
    return example.question


def default_location(root: Path) -> Path:
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return lab_home() / "seed-index" / f"{key}.sqlite"


def _use_schema(db: sqlite3.Connection) -> None:
    """Make the tables SCHEMA at FORMAT (PRAGMA user_version); any other layout is
    dropped and rebuilt empty: these databases are caches."""
    if db.execute("PRAGMA user_version").fetchone()[0] == FORMAT:
        return
    with transaction(db):
        if db.execute("PRAGMA user_version").fetchone()[0] == FORMAT:  # another process won
            return
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            db.execute(f"DROP TABLE {name}")
        for statement in SCHEMA.strip().split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version={FORMAT}")


def in_memory() -> sqlite3.Connection:
    """An index that lives for this run only."""
    return connect(":memory:", TIMEOUT_S, _use_schema)


def open_index(location: Path) -> sqlite3.Connection:
    """The index at `location` (lab_hooks.sqlite_wal: WAL, opened under a flock on
    `<index>.lock`, since pre-commit's parallel hook processes open one index at once); in
    memory when that is unusable (correct, only slower). A damaged file is made anew; a lock
    error is never taken for damage (deleting a file others use)."""
    try:
        location.parent.mkdir(parents=True, exist_ok=True)
        return open_wal(location, str(location) + ".lock", TIMEOUT_S, _use_schema, disposable=True)
    except (OSError, sqlite3.DatabaseError):  # sqlite3.OperationalError (busy, locked) included
        return in_memory()


def _seeds(leaf: Leaf) -> list[Seed]:
    prompts = [(e.pos, seed_prompt(leaf, e)) for e in leaf.examples if e.question.strip()]
    return [(line, col, prompt, len(rouge_tokens(prompt))) for (line, col), prompt in prompts]


def scan(root: Path) -> dict[str, tuple[int, int]]:
    """Taxonomy path -> (size, mtime_ns) of every regular leaf file under the root's trees.

    `os.scandir` all the way: on every commit this walks the whole tree.
    """
    found: dict[str, tuple[int, int]] = {}
    stack = [(os.path.join(root, top), top) for top in sorted(TOP_LEVELS)]
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, f"{rel}/{entry.name}"))
            elif entry.name in LEAF_NAMES and entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found[f"{rel}/{entry.name}"] = (st.st_size, st.st_mtime_ns)
    return found


class SeedIndex:
    """The seed prompts of every leaf under a taxonomy root, kept current on disk."""

    def __init__(self, root: Path, location: Path | None = None,
                 files: Mapping[str, tuple[int, int]] | None = None):
        self.root = Path(root)
        self.files = scan(self.root) if files is None else files  # path -> (size, mtime_ns)
        # A small taxonomy's index lives for one run and is read whole (`seeds()`):
        # it keeps no postings, since nothing looks its seeds up by token.
        self.transient = location is None and len(self.files) < ON_DISK_FROM
        if self.transient:
            self.db = in_memory()
        else:
            self.db = open_index(location or default_location(self.root))
        self.paths: dict[int, str] = {}

    def refresh(self, parsed: Mapping[str, Leaf] = {}) -> None:
        """Bring the index in line with the leaf files under the root.

        Only files whose size or mtime changed are read; `parsed` holds leaves
        this run already has (the ones being checked), reused instead of re-read.
        """
        files = self.files
        known = {path: (leaf_id, size, mtime) for leaf_id, path, size, mtime in
                 self.db.execute("SELECT id, path, size, mtime_ns FROM leaves")}
        stale: list[tuple[str, int, int, list[Seed]]] = []
        for path, stat in files.items():
            entry = known.get(path)
            if entry is not None and entry[1:] == stat:
                continue
            leaf = parsed.get(path)
            if leaf is None:
                try:
                    leaf = load_leaf_file(self.root / path, self.root)
                except LeafError:
                    leaf = None  # reported when that file itself is checked
            stale.append((path, *stat, _seeds(leaf) if leaf else []))
        gone = [path for path in known if path not in files]
        if stale or gone:
            # Another hook process (pre-commit runs several) may have written since
            # `known` was read: rows are dropped by path, inside the write lock.
            with transaction(self.db):
                for path in gone:
                    self._drop(path)
                for path, size, mtime, seeds in stale:
                    self._drop(path)
                    self._add(path, size, mtime, seeds)
        self.paths = {leaf_id: path for leaf_id, path in self.db.execute("SELECT id, path FROM leaves")}

    def _drop(self, path: str) -> None:
        row = self.db.execute("SELECT id FROM leaves WHERE path = ?", (path,)).fetchone()
        if row is None:
            return
        leaf_id = row[0]
        for table in ("postings", "norms", "embeddings"):
            self.db.execute(f"DELETE FROM {table} WHERE leaf = ?", (leaf_id,))
        self.db.execute("DELETE FROM leaves WHERE id = ?", (leaf_id,))

    def _add(self, path: str, size: int, mtime: int, seeds: list[Seed]) -> None:
        cur = self.db.execute("INSERT INTO leaves(path, size, mtime_ns, seeds) VALUES (?, ?, ?, ?)",
                              (path, size, mtime, json.dumps(seeds, ensure_ascii=False)))
        leaf_id = cur.lastrowid
        if not self.transient:
            self.db.executemany("INSERT INTO postings VALUES (?, ?, ?, ?)", (
                (token, leaf_id, i, n) for i, (_, _, q, n) in enumerate(seeds) for token in set(rouge_tokens(q))))
        self.db.executemany("INSERT INTO norms VALUES (?, ?, ?)", (
            (norm, leaf_id, i) for i, (_, _, q, _) in enumerate(seeds) if (norm := normalize(q))))

    def seeds(self, leaf_ids: Iterable[int] | None = None) -> dict[int, list[Seed]]:
        """Leaf id -> its seeds; all leaves when `leaf_ids` is None."""
        if leaf_ids is None:
            rows = self.db.execute("SELECT id, seeds FROM leaves")
        else:
            ids = sorted(set(leaf_ids))
            rows = (row for chunk in chunks(ids) for row in self.db.execute(
                f"SELECT id, seeds FROM leaves WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return {leaf_id: [tuple(s) for s in json.loads(seeds)] for leaf_id, seeds in rows}

    def document_frequency(self, tokens: Iterable[str]) -> dict[str, int]:
        """Token -> how many seed prompts hold it (not `transient`: it keeps no postings)."""
        return dict(self._in("SELECT token, COUNT(*) FROM postings WHERE token IN ({}) GROUP BY token", tokens))

    def holding(self, tokens: Iterable[str], shortest: float, longest: float) -> set[tuple[int, int]]:
        """(leaf id, seed index) of every seed prompt holding one of the tokens, of a length
        in bounds (not `transient`: it keeps no postings)."""
        return set(self._in("SELECT leaf, seed FROM postings WHERE token IN ({}) AND length BETWEEN ? AND ?",
                            tokens, (shortest, longest)))

    def same_text(self, norms: Iterable[str]) -> list[tuple[str, int, int]]:
        """(normalized text, leaf id, seed index) of every seed prompt equal to one of `norms`."""
        return self._in("SELECT norm, leaf, seed FROM norms WHERE norm IN ({})", norms)

    def _in(self, sql: str, values: Iterable[str], more: tuple = ()) -> list[tuple]:
        out: list[tuple] = []
        for chunk in chunks(sorted(set(values))):
            out += self.db.execute(sql.format(",".join("?" * len(chunk))), (*chunk, *more)).fetchall()
        return out

    def embeddings(self) -> dict[tuple[int, int], bytes]:
        """(leaf id, seed index) -> stored embedding (float32 bytes), for `--semantic`."""
        return {(leaf, seed): vector for leaf, seed, vector in self.db.execute("SELECT * FROM embeddings")}

    def store_embeddings(self, rows: Iterable[tuple[int, int, bytes]]) -> None:
        with transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self.db.close()


def chunks(values: list, size: int = 500) -> Iterable[list]:
    """Slices of `values` small enough for one `IN (...)` of SQLite's."""
    for i in range(0, len(values), size):
        yield values[i:i + size]
