"""The ROUGE-L engine: rouge-score's numbers, and exactly brute force's pairs."""

import csv
import random
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import cdist

from lab_hooks.checks import similarity as sim
from lab_hooks.taxonomy.load import LeafError, parse_leaf

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "instructlab-taxonomy-history"


@pytest.fixture(scope="module")
def corpus_texts():
    """Seed questions and answers of the real corpus, in index order (a few thousand)."""
    if not (CORPUS / "index.tsv").is_file():
        pytest.skip(f"real corpus not found at {CORPUS}")
    questions, answers = [], []
    with open(CORPUS / "index.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for row in rows[::3]:
        file = CORPUS / row["tree"] / row["path"]
        try:
            leaf = parse_leaf(file.read_bytes(), row["path"])
        except (LeafError, OSError):
            continue
        questions += [e.question for e in leaf.examples]
        answers += [e.answer for e in leaf.examples]
    return questions, answers


def brute_force_scores(queries, references):
    """F of all pairs through rapidfuzz's cdist and rouge-score's F formula: no filter at all."""
    vocab = sim.Vocabulary()
    q = [vocab.encode(t) for t in queries]
    r = q if references is None else [vocab.encode(t) for t in references]
    lcs = cdist(q, r, scorer=LCSseq.similarity, dtype=np.int32, workers=2).astype(np.float64)
    len_q = np.array([len(s) for s in q], dtype=np.float64)[:, None]
    len_r = np.array([len(s) for s in r], dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = lcs / len_q, lcs / len_r  # float64: the same IEEE arithmetic as fmeasure
        return np.where(lcs > 0, 2 * precision * recall / (precision + recall), 0.0)


def pairs_at(score, threshold, same=False):
    keep = score >= threshold
    if same:
        keep &= np.triu(np.ones_like(keep), k=1)
    return {(int(i), int(j), float(score[i, j])) for i, j in zip(*keep.nonzero())}


def test_tokens_follow_rouge_score_default_tokenizer():
    assert sim.rouge_tokens("Write a 5-line poem, about Café_Life!") == \
        ["write", "a", "5", "line", "poem", "about", "caf", "life"]
    assert sim.rouge_tokens("日本語の質問") == []
    assert sim.rouge_tokens("ÀB\tc\n\nD") == ["b", "c", "d"]  # À lower-cases to à: not [a-z0-9]
    tokenize = pytest.importorskip("rouge_score.tokenize", reason="rouge-score (the dev extra) not installed")
    # Upper-case letters whose lower case is or holds ASCII (İ -> i + a dot, Kelvin sign -> k).
    for text in ("İstanbul \u212a9 naïve_x²", "ＡＢＣ１２ ß ﬁ ǅ Ω", "a?b", ""):
        assert sim.rouge_tokens(text) == tokenize.tokenize(text, None)


def test_scores_equal_rouge_score(corpus_texts):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer", reason="rouge-score (the dev extra) not installed")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    questions, answers = corpus_texts
    rng = random.Random(3)
    texts = questions + answers
    for _ in range(200):
        a, b = rng.choice(texts), rng.choice(texts)
        assert sim.rouge_l(a, b) == scorer.score(a, b)["rougeL"].fmeasure
    for a, b in zip(questions[:800], questions[1:800]):  # neighbours: often near-duplicate versions
        assert sim.rouge_l(a, b) == scorer.score(a, b)["rougeL"].fmeasure
        assert sim.rouge_l(a + " " + b, b) == scorer.score(a + " " + b, b)["rougeL"].fmeasure


@pytest.fixture(scope="module")
def question_scores(corpus_texts):
    questions, _ = corpus_texts
    assert len(questions) > 2500
    return brute_force_scores(questions, None)


@pytest.mark.parametrize("threshold", [0.7, 0.5, 0.9])
def test_self_join_equals_brute_force_on_real_seeds(corpus_texts, question_scores, threshold):
    questions, _ = corpus_texts
    expected = pairs_at(question_scores, threshold, same=True)
    got = sim.near_duplicate_pairs(questions, threshold)
    assert len(got) == len(set(got))
    assert set(got) == expected
    assert len(expected) > 100  # the corpus has real near-duplicates: the test can fail


@pytest.mark.parametrize("scan_below, probe_up_to", [(0, 0), (0, 10**6), (10**12, 0)],
                         ids=["prefix-index", "probe", "scan"])
def test_join_equals_brute_force_every_strategy(corpus_texts, monkeypatch, scan_below, probe_up_to):
    questions, answers = corpus_texts
    queries, references = questions[:400] + answers[:50], questions[400:] + answers[100:300]
    expected = pairs_at(brute_force_scores(queries, references), 0.7)
    assert len(expected) > 10
    monkeypatch.setattr(sim, "_SCAN_PAIRS", scan_below)
    monkeypatch.setattr(sim, "_PROBE_REFERENCES", probe_up_to)
    got = sim.near_duplicates(queries, references, 0.7)
    assert len(got) == len(set(got)) and set(got) == expected


def test_boundary_scores_are_kept_and_empty_texts_never_match():
    # 7 shared tokens of 10 + 10: F = 0.7 exactly in rational terms; kept as rouge-score keeps it.
    a = "w1 w2 w3 w4 w5 w6 w7 x1 x2 x3"
    b = "w1 w2 w3 w4 w5 w6 w7 y1 y2 y3"
    score = sim.rouge_l(a, b)
    assert sim.near_duplicate_pairs([a, b], score) == [(0, 1, score)]
    assert sim.near_duplicates([a], [b], score) == [(0, 0, score)]
    assert sim.near_duplicate_pairs([a, b], score + 1e-12) == []
    assert sim.near_duplicate_pairs(["", "!!", "", "a b"], 0.1) == []
    assert sim.near_duplicates(["", "a"], ["", "A."], 1.0) == [(1, 1, 1.0)]
    with pytest.raises(ValueError):
        sim.near_duplicate_pairs([a, b], 0)


def test_identical_texts_all_pair_up():
    texts = ["Tell me a joke.", "tell me a JOKE", "Tell me a joke!", "Something else entirely."]
    assert sim.near_duplicate_pairs(texts, 1.0) == [(0, 1, 1.0), (0, 2, 1.0), (1, 2, 1.0)]


def test_pairwise_scores_is_brute_force():
    vocab = sim.Vocabulary()
    seqs = [vocab.encode(t) for t in ["a b c", "a b d", "", "c b a"]]
    got = sim.pairwise_scores(seqs)
    assert [(i, j) for i, j, _ in got] == list(combinations(range(4), 2))
    assert got[0][2] == pytest.approx(2 / 3) and got[1][2] == 0.0


def test_normalize():
    assert sim.normalize("  What's   the CAPITAL of France?? ") == sim.normalize("whats the capital of france")
    assert sim.normalize("Qu'est-ce que\tc'est ?") == "questce que cest"
    assert sim.normalize("東京は？") == "東京は"
