"""ROUGE-L near-duplicate engine over plain strings: exact, and fast at taxonomy scale.

Scores equal Google's `rouge-score` (default tokenizer, no stemming) bit for bit:
same tokens, LCS from rapidfuzz's C++ `LCSseq`, the same float arithmetic for F.
The all-pairs passes return exactly the pairs brute force returns: candidates come
from an exact filter, never a probabilistic one. Since LCS(a, b) <= |a ∩ b| (token
multisets) and F = 2·LCS / (|a| + |b|), a pair with F >= t needs a length ratio
within t / (2 - t) and a multiset overlap >= t·(|a| + |b|) / 2; prefix filtering
over an inverted index (Chaudhuri et al. 2006, Bayardo et al. 2007) finds every
pair with that overlap. Only candidates get an LCS.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import combinations
from typing import Iterable, Sequence

from rapidfuzz.distance import LCSseq
from rapidfuzz.process import extract

_WORD = re.compile(r"[^\W_]+")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
# Bounds use a threshold lowered by this much, so that float rounding in F can
# never make a filter drop a pair that the exact score keeps.
_SLACK = 1e-9
# Below this many query x reference pairs a plain scan in rapidfuzz's C++ loop
# is faster than building an index (the hook's case: one leaf against a tree).
_SCAN_PAIRS = 2_000_000
# Up to this many references (MT-Bench's 160 turns), every reference element is
# indexed and each query probes it: no global order over the queries is built.
_PROBE_REFERENCES = 1_000

Tokens = str  # a text's tokens, one character each (see Vocabulary)
Pair = tuple[int, int, float]


# Every byte but [a-z0-9] -> a space. Non-ASCII characters become "?" first: the same
# tokens as the regex [a-z0-9]+ over the lower-cased text, in C, twice as fast.
_SEPARATORS = bytes(b if chr(b) in "abcdefghijklmnopqrstuvwxyz0123456789" else 0x20 for b in range(256))


def rouge_tokens(text: str) -> list[str]:
    """`rouge_score.tokenize.tokenize(text, None)`: lower-case, runs of [a-z0-9]."""
    return text.lower().encode("ascii", "replace").translate(_SEPARATORS).decode("ascii").split()


def normalize(text: str) -> str:
    """Text for exact-duplicate checks: case, whitespace and punctuation folded away."""
    return " ".join(_PUNCTUATION.sub("", text.casefold()).split())


def words(text: str) -> list[str]:
    """Case-folded words of any script, for n-gram overlap."""
    return _WORD.findall(text.casefold())


def fmeasure(lcs: int, len_a: int, len_b: int) -> float:
    """ROUGE-L F from an LCS length, with rouge-score's own float arithmetic."""
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len_a, lcs / len_b
    return 2 * precision * recall / (precision + recall)


class _Codes(dict):
    """Token -> the character numbered by its order of first sight."""

    def __missing__(self, token: str) -> str:
        code = self[token] = chr(len(self))  # ValueError past 1,114,112 distinct tokens
        return code


class Vocabulary:
    """Each distinct token becomes one character, so a text's tokens are a str:
    LCS compares exact code points (no hash collisions), and rapidfuzz reads a
    str's buffer directly, twice as fast as converting a list of ints per call.
    A text is tokenized once per vocabulary (checks of one run share one:
    versions of a leaf repeat most texts).
    """

    def __init__(self) -> None:
        self.codes = _Codes()
        self._texts: dict[str, str] = {}

    def encode(self, text: str) -> Tokens:
        tokens = self._texts.get(text)
        if tokens is None:
            tokens = self._texts[text] = self.encode_tokens(rouge_tokens(text))
        return tokens

    def encode_tokens(self, tokens: Iterable[str]) -> Tokens:
        return "".join(map(self.codes.__getitem__, tokens))  # in C but for new tokens


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two strings, as `rouge_score` computes it."""
    vocab = Vocabulary()
    return rouge_l_tokens(vocab.encode(a), vocab.encode(b))


def rouge_l_tokens(a: Tokens, b: Tokens) -> float:
    """ROUGE-L F-measure of two encoded texts."""
    return fmeasure(LCSseq.similarity(a, b), len(a), len(b)) if a and b else 0.0


def near_duplicate_pairs(texts: Sequence[str], threshold: float) -> list[Pair]:
    """Every (i, j, F) with i < j and ROUGE-L F(texts[i], texts[j]) >= threshold."""
    vocab = Vocabulary()
    return self_join([vocab.encode(t) for t in texts], threshold)


def near_duplicates(queries: Sequence[str], references: Sequence[str], threshold: float) -> list[Pair]:
    """Every (query index, reference index, F) with ROUGE-L F >= threshold."""
    vocab = Vocabulary()
    return join([vocab.encode(t) for t in queries], [vocab.encode(t) for t in references], threshold)


def pairwise_scores(seqs: Sequence[Tokens]) -> list[Pair]:
    """F of every pair i < j, by brute force: for small sets such as one leaf."""
    return [(i, j, rouge_l_tokens(a, b)) for (i, a), (j, b) in combinations(enumerate(seqs), 2)]


def _check(threshold: float) -> float:
    if not 0 < threshold <= 1:
        raise ValueError(f"ROUGE-L threshold must be in (0, 1], got {threshold}")
    return threshold - _SLACK


def _min_overlap(length: int, t: float) -> int:
    """The least overlap a record of this length needs with a partner of any length."""
    return max(1, math.ceil(length * t / (2 - t)))


def _group(seqs: Sequence[Tokens]) -> dict[Tokens, list[int]]:
    """Identical non-empty encoded texts, each with the indexes holding it."""
    groups: dict[Tokens, list[int]] = {}
    for i, seq in enumerate(seqs):
        if seq:
            groups.setdefault(seq, []).append(i)
    return groups


_CODE_POINTS = 0x110000


def _elements(record: Tokens) -> list[int]:
    """A token multiset as a set of (token, occurrence) elements, each packed in
    one int, so set overlap is multiset overlap. Unordered."""
    counts = Counter(record)  # counted in C; most tokens occur once
    return [*map(ord, counts),
            *(ord(tok) + k * _CODE_POINTS for tok, n in counts.items() if n > 1 for k in range(1, n))]


class _Ordered:
    """Records as element sets sorted by a global rarest-first order: rare
    elements first keep prefixes selective."""

    def __init__(self, records: Sequence[Tokens]):
        element_sets = [_elements(record) for record in records]
        frequency = Counter(e for elements in element_sets for e in elements)
        rank = {e: r for r, (e, _) in enumerate(sorted(frequency.items(), key=lambda kv: (kv[1], kv[0])))}
        self.sorted = [sorted(elements, key=rank.__getitem__) for elements in element_sets]


def self_join(seqs: Sequence[Tokens], threshold: float) -> list[Pair]:
    """`near_duplicate_pairs` over encoded texts; pairs sorted (i, j)."""
    t = _check(threshold)
    groups = _group(seqs)
    records = list(groups)
    pairs: list[Pair] = [(i, j, 1.0) for members in groups.values() for i, j in combinations(members, 2)]
    order = sorted(range(len(records)), key=lambda r: len(records[r]))
    elements = _Ordered(records).sorted
    index: dict[int, list[int]] = {}
    for x in order:
        rec, n = records[x], len(records[x])
        candidates = set()
        for e in elements[x][: n - _min_overlap(n, t) + 1]:
            candidates.update(index.get(e, ()))
        for other, score in _scored(rec, candidates, records, threshold, t):  # indexed ones are no longer
            pairs.extend((min(i, j), max(i, j), score) for i in groups[rec] for j in groups[other])
        # Later records are at least as long, so a pair needs overlap >= t·n.
        for e in elements[x][: n - max(1, math.ceil(n * t)) + 1]:
            index.setdefault(e, []).append(x)
    pairs.sort()
    return pairs


def join(queries: Sequence[Tokens], references: Sequence[Tokens], threshold: float) -> list[Pair]:
    """`near_duplicates` over encoded texts; pairs sorted (query, reference)."""
    t = _check(threshold)
    if len(queries) * len(references) <= _SCAN_PAIRS:
        pairs = _scan(queries, references, threshold, t)
    elif len(references) <= _PROBE_REFERENCES:
        pairs = _probe_join(queries, references, threshold, t)
    else:
        pairs = _indexed_join(queries, references, threshold, t)
    pairs.sort()
    return pairs


def _scan(queries: Sequence[Tokens], references: Sequence[Tokens], threshold: float, t: float) -> list[Pair]:
    """Each query against every reference in rapidfuzz's C++ loop, cut at the least LCS."""
    pairs: list[Pair] = []
    refs = [r if r else None for r in references]  # rapidfuzz skips None choices
    for qi, query in enumerate(queries):
        if not query:
            continue
        m = len(query)
        for _, lcs, ri in extract(query, refs, scorer=LCSseq.similarity, processor=None,
                                   score_cutoff=_min_overlap(m, t), limit=None):
            score = fmeasure(lcs, m, len(references[ri]))
            if score >= threshold:
                pairs.append((qi, ri, score))
    return pairs


def _probe_join(queries: Sequence[Tokens], references: Sequence[Tokens], threshold: float,
                t: float) -> list[Pair]:
    """Every element of the few references indexed; a query whose overlap with a
    reference reaches the least a match needs (α) shares one of any m - α + 1 of
    its m elements, so its rarest m - α + 1 find every candidate. Elements that
    no reference holds count towards those m - α + 1 and find nothing: a query
    with fewer than α shared elements is dropped before any lookup."""
    qgroups, rgroups = _group(queries), _group(references)
    rrecs = list(rgroups)
    index: dict[int, list[int]] = {}
    for y, rec in enumerate(rrecs):
        for e in _elements(rec):
            index.setdefault(e, []).append(y)
    rarity = {e: len(holders) for e, holders in index.items()}
    reference_tokens = {tok for rec in rrecs for tok in rec}
    lengths = [len(rec) for rec in rrecs] or [0]
    least, most = min(lengths), max(lengths)
    pairs: list[Pair] = []
    for rec, members in qgroups.items():
        m = len(rec)
        shortest, longest = m * t / (2 - t), m * (2 - t) / t
        if shortest > most or longest < least:  # no reference of a length it could match
            continue
        need = _min_overlap(m, t)
        if sum(map(reference_tokens.__contains__, rec)) < need:  # counted in C: many queries stop here
            continue
        shared = [e for e in _elements(rec) if e in rarity]
        if len(shared) < need:
            continue
        shared.sort(key=rarity.__getitem__)
        candidates = set()
        for e in shared[: len(shared) - need + 1]:
            candidates.update(index[e])
        for other, score in _scored(rec, candidates, rrecs, threshold, t):
            pairs.extend((i, j, score) for i in members for j in rgroups[other])
    return pairs


def _scored(rec: Tokens, candidates: Iterable[int], records: Sequence[Tokens], threshold: float, t: float):
    """(record, F) of each candidate record whose length allows a match and whose F with `rec` >= threshold."""
    m = len(rec)
    shortest, longest = m * t / (2 - t), m * (2 - t) / t
    for y in candidates:
        other = records[y]
        if shortest <= len(other) <= longest:
            score = fmeasure(LCSseq.similarity(rec, other), m, len(other))
            if score >= threshold:
                yield other, score


def _indexed_join(queries: Sequence[Tokens], references: Sequence[Tokens], threshold: float,
                  t: float) -> list[Pair]:
    """Prefix filtering: both sides' prefixes under one global order must meet."""
    qgroups, rgroups = _group(queries), _group(references)
    qrecs, rrecs = list(qgroups), list(rgroups)
    elements = _Ordered(qrecs + rrecs).sorted
    index: dict[int, list[int]] = {}
    for y, rec in enumerate(rrecs):
        for e in elements[len(qrecs) + y][: len(rec) - _min_overlap(len(rec), t) + 1]:
            index.setdefault(e, []).append(y)
    pairs: list[Pair] = []
    for x, rec in enumerate(qrecs):
        candidates = set()
        for e in elements[x][: len(rec) - _min_overlap(len(rec), t) + 1]:
            candidates.update(index.get(e, ()))
        for other, score in _scored(rec, candidates, rrecs, threshold, t):
            pairs.extend((i, j, score) for i in qgroups[rec] for j in rgroups[other])
    return pairs
