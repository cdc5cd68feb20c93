"""Diversity, duplicate and contamination checks.

LAB's premise is that a leaf's few seeds span its task, so near-duplicate seeds
within a leaf are errors; a seed repeated in another leaf of the taxonomy is
reported with that leaf's file:line; a seed that overlaps MT-Bench would teach
the evaluation set. All similarity is ROUGE-L as `rouge-score` computes it
(see `similarity`), found by exact filters, so nothing is missed.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Iterator, Sequence

from lab_hooks.checks import similarity as sim
from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import ERROR, WARNING, Finding, Metric
from lab_hooks.checks.mtbench_index import MTBenchIndex, MTBenchUnavailable
from lab_hooks.checks.registry import leaf_check, rule, taxonomy_check, threshold
from lab_hooks.checks.seedindex import SeedIndex, seed_prompt
from lab_hooks.taxonomy.leaf import Example, Leaf

SIMILAR_QUESTIONS = rule("LH601", "similar-questions", WARNING,
                         "two seed questions of a leaf (with their context in a grounded skill) have ROUGE-L >= "
                         "`rouge_l_near_duplicate` (0.7)")
SIMILAR_SEEDS = rule("LH602", "similar-seeds", WARNING,
                     "two seeds of a leaf (question + answer) have ROUGE-L >= `rouge_l_near_duplicate` (0.7)")
LOW_DIVERSITY = rule("LH603", "low-diversity", WARNING,
                     "the leaf's diversity (mean pairwise 1 - ROUGE-L of its questions) is below `min_diversity`",
                     leaf_level=True)
DUPLICATE_ACROSS = rule("LH604", "duplicate-across-leaves", ERROR,
                        "a seed question repeats one of another leaf (ignoring case, whitespace, punctuation)")
SIMILAR_ACROSS = rule("LH605", "similar-across-leaves", WARNING,
                      "a seed question has ROUGE-L >= `rouge_l_near_duplicate` with one of another leaf")
CONTAMINATION = rule("LH606", "mtbench-contamination", ERROR,
                     "a seed question, answer or context has ROUGE-L >= `rouge_l_contamination` (0.7) or shares a "
                     "`contamination_ngram`-word (13) run with an MT-Bench question (either turn)")
MTBENCH_UNAVAILABLE = rule("LH607", "mtbench-unavailable", WARNING,
                           "the MT-Bench index shipped with lab-hooks is missing or unreadable: contamination "
                           "not checked",
                           leaf_level=True)
REPEATED_SEED = rule("LH610", "repeated-seed", ERROR,
                     "a seed asks an earlier seed's question (the same words; in a grounded skill over the same "
                     "context) and its answer nearly repeats that seed's (ROUGE-L >= `rouge_l_repeated_answer`, 0.9)")

NEAR_DUPLICATE = threshold("rouge_l_near_duplicate", 0.7, "ROUGE-L F at which two seeds are near-duplicates")
REPEATED_ANSWER = threshold("rouge_l_repeated_answer", 0.9,
                            "ROUGE-L F of two answers to one question at which the later seed repeats the earlier")
# 0.3 = 1 - 0.7: below it, the leaf's average pair of seeds is itself a near-duplicate.
MIN_DIVERSITY = threshold("min_diversity", 0.3, "the least mean pairwise 1 - ROUGE-L of a leaf's seed questions")
CONTAMINATION_ROUGE_L = threshold("rouge_l_contamination", 0.7, "ROUGE-L F at which a seed matches an MT-Bench turn")
CONTAMINATION_NGRAM = threshold("contamination_ngram", 13, "length in words of a run shared with MT-Bench that flags a seed")

# Above this many query questions (or for a small taxonomy's transient index),
# matching loads the whole index into memory and runs one prefix-filtered join
# instead of looking candidates up per token.
BULK_QUERIES = 200


def _line(example: Example) -> int:
    return example.pos[0]


# A finding about two seeds names them in its subject by the last characters of their
# texts: stable when lines move, distinct for different seeds, and cut in constant time
# (a grounded seed's prompt opens with a long context that its siblings share).
SUBJECT_CHARS = 80


@leaf_check
def check_within_leaf(leaf: Leaf, ctx: Context) -> Iterator[Finding | Metric]:
    """Seeds of one leaf that repeat each other: an error when a seed asks the same
    question and nearly repeats the answer (it adds nothing), a warning when they
    are merely alike (templates with one word changed, which reviewers merge)."""
    examples = [e for e in leaf.examples if e.question.strip()]
    if len(examples) < 2:
        return
    limit = ctx.threshold(NEAR_DUPLICATE)
    prompts = [seed_prompt(leaf, e) for e in examples]
    what = "question (with its context)" if prompts != [e.question for e in examples] else "question"
    vocab = ctx.memo("vocabulary", sim.Vocabulary)
    questions = [vocab.encode(p) for p in prompts]
    answers = [vocab.encode(e.answer) for e in examples]
    names = [p[-SUBJECT_CHARS:] for p in prompts]
    seed_names = [f"{n}\n{e.answer[-SUBJECT_CHARS:]}" for n, e in zip(names, examples)]
    repeats = set()
    answer_limit = ctx.threshold(REPEATED_ANSWER)
    asking: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        asking.setdefault(q, []).append(i)
    for same in asking.values():
        for i, j in combinations(same, 2):
            score = sim.rouge_l_tokens(answers[i], answers[j])
            if score >= answer_limit:
                repeats.add((i, j))
                yield REPEATED_SEED.at(leaf.file, examples[j].pos,
                                       f"seed repeats the seed at line {_line(examples[i])}: the same {what}, and "
                                       f"answers with ROUGE-L {score:.2f} >= {answer_limit}; it adds nothing",
                                       f"{seed_names[i]}\n{seed_names[j]}")
    scores = sim.pairwise_scores(questions)
    plural = "questions (with their contexts)" if what != "question" else "questions"
    yield from _alike(SIMILAR_QUESTIONS, leaf, examples, scores, limit, repeats, what, (what, plural), names)
    # One leaf's seeds are few: all pairs in rapidfuzz beat building self_join's index.
    seeds = [q + a for q, a in zip(questions, answers)]  # the tokens of f"{p}\n{answer}"
    yield from _alike(SIMILAR_SEEDS, leaf, examples, sim.pairwise_scores(seeds), limit, repeats,
                      "seed (question + answer)", ("seed", "seeds"), seed_names)
    diversity = math.fsum(1 - score for _, _, score in scores) / len(scores)  # statistics.fmean, without importing it
    yield Metric(leaf.file, "diversity", round(diversity, 4))
    floor = ctx.threshold(MIN_DIVERSITY)
    if diversity < floor:
        yield LOW_DIVERSITY.at(leaf.file, leaf.doc.key_marks.get(("seed_examples",), (1, 1)),
                               f"seeds are too alike: diversity {diversity:.2f} < {floor} "
                               f"(mean pairwise 1 - ROUGE-L over {len(examples)} seeds)")


SHOWN_LINES = 3  # earlier seeds named per finding; the rest are counted


def _alike(rule, leaf: Leaf, examples: list[Example], scores: list, limit: float, repeats: set,
           what: str, other: tuple[str, str], names: list[str]) -> Iterator[Finding]:
    """One finding per seed that is alike to earlier ones (not already a repeat), naming them:
    a leaf of seventeen "Tell me a knock knock joke" gets sixteen lines, not 136."""
    earlier: dict[int, list[tuple[int, float]]] = {}
    for i, j, score in scores:
        if score >= limit and (i, j) not in repeats:
            earlier.setdefault(j, []).append((i, score))
    for j, alike in earlier.items():
        lines = _listed([str(_line(examples[i])) for i, _ in alike])
        low, high = min(s for _, s in alike), max(s for _, s in alike)
        where = f"the {other[0]} at line {lines}" if len(alike) == 1 else f"the {other[1]} at lines {lines}"
        score = f"{high:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"
        yield rule.at(leaf.file, examples[j].pos, f"{what} is a near-duplicate of {where} (ROUGE-L {score} >= {limit})",
                      "\n".join([names[j], *sorted(names[i] for i, _ in alike)]))


def _listed(lines: list[str]) -> str:
    """'5', '5 and 7', '5, 7 and 9', '5, 7, 9 and 13 more'."""
    rest = len(lines) - SHOWN_LINES
    if rest > 0:
        return f"{', '.join(lines[:SHOWN_LINES])} and {rest} more"
    return lines[0] if len(lines) == 1 else f"{', '.join(lines[:-1])} and {lines[-1]}"


def cross_leaf_matches(index: SeedIndex, queries: Sequence[tuple[str, str]], limit: float,
                       vocab: sim.Vocabulary | None = None) -> list[tuple[int, int, int, float, bool]]:
    """Seeds of other leaves that repeat or nearly repeat each query.

    `queries` are (taxonomy path of its leaf, question). Returns (query index,
    other leaf id, its seed index, ROUGE-L, exact duplicate?) sorted; a pair is
    exact when the normalized texts are equal.
    """
    leaf_of = {path: leaf_id for leaf_id, path in index.paths.items()}
    own = [leaf_of.get(path) for path, _ in queries]
    normalized = {q: sim.normalize(q) for q in dict.fromkeys(q for _, q in queries)}  # versions repeat seeds
    norms = [normalized[q] for _, q in queries]
    exact = {}
    by_norm: dict[str, list[tuple[int, int]]] = {}
    for norm, leaf_id, seed in index.same_text(n for n in norms if n):
        by_norm.setdefault(norm, []).append((leaf_id, seed))
    for qi, norm in enumerate(norms):
        for leaf_id, seed in by_norm.get(norm, ()) if norm else ():
            if leaf_id != own[qi]:
                exact[(qi, leaf_id, seed)] = True
    vocab = vocab or sim.Vocabulary()
    if index.transient or len(queries) > BULK_QUERIES:
        near = _near_in_memory(index, [vocab.encode(q) for _, q in queries], vocab, limit)
    else:
        near = _near_by_postings(index, [sim.rouge_tokens(q) for _, q in queries], vocab, limit)
    out = {(qi, leaf_id, seed): (score, (qi, leaf_id, seed) in exact)
           for qi, leaf_id, seed, score in near if leaf_id != own[qi]}
    for key in exact:
        out.setdefault(key, (1.0, True))
    return sorted((*key, score, is_exact) for key, (score, is_exact) in out.items())


def _near_in_memory(index: SeedIndex, queries: list[sim.Tokens], vocab: sim.Vocabulary, limit: float):
    refs = [(leaf_id, seed, q) for leaf_id, seeds in index.seeds().items() for seed, (_, _, q, _) in enumerate(seeds)]
    pairs = sim.join(queries, [vocab.encode(q) for _, _, q in refs], limit)
    return [(qi, refs[ri][0], refs[ri][1], score) for qi, ri, score in pairs]


def _near_by_postings(index: SeedIndex, tokens: list[list[str]], vocab: sim.Vocabulary, limit: float):
    """Prefix filtering with the index as the other side: a seed whose multiset
    overlap with a query of m tokens reaches the least one a match needs (α)
    shares a token with any m - α + 1 of the query's tokens, so the query's
    rarest m - α + 1 tokens find every candidate; lengths outside the ratio
    bound are cut in the same lookup."""
    t = limit - sim._SLACK
    df = index.document_frequency(tok for toks in tokens for tok in toks)
    candidates = []
    for toks in tokens:
        m = len(toks)
        if not m:
            candidates.append(set())
            continue
        rarest = sorted(toks, key=lambda tok: (df.get(tok, 0), tok))[: m - sim._min_overlap(m, t) + 1]
        candidates.append(index.holding(rarest, m * t / (2 - t), m * (2 - t) / t))
    seeds = index.seeds(leaf_id for refs in candidates for leaf_id, _ in refs)
    out = []
    for qi, refs in enumerate(candidates):
        query = vocab.encode_tokens(tokens[qi])
        for leaf_id, seed in refs:
            score = sim.rouge_l_tokens(query, vocab.encode(seeds[leaf_id][seed][2]))
            if score >= limit:
                out.append((qi, leaf_id, seed, score))
    return out


def shown(root: Path, path: str) -> str:
    """Another leaf's file as the user can open it: relative to the working directory."""
    try:
        return os.path.relpath(root / path)
    except ValueError:  # another drive on Windows
        return str(root / path)


SHOWN_MATCHES = 3  # other seeds named per finding; the rest are counted


@taxonomy_check
def check_across_taxonomy(leaves: Sequence[Leaf], ctx: Context) -> Iterator[Finding]:
    queries = [(leaf, e) for leaf in leaves for e in leaf.examples if e.question.strip()]
    if not queries:
        return
    limit = ctx.threshold(NEAR_DUPLICATE)
    index = SeedIndex(ctx.root, files=ctx.leaf_stats())
    try:
        index.refresh({leaf.path: leaf for leaf in leaves})
        matches = cross_leaf_matches(index, [(leaf.path, seed_prompt(leaf, e)) for leaf, e in queries], limit,
                                     ctx.memo("vocabulary", sim.Vocabulary))
        seeds = index.seeds({leaf_id for _, leaf_id, _, _, _ in matches})
        paths = index.paths
    finally:
        index.close()
    found: dict[tuple[int, bool], list[tuple[float, str]]] = {}
    for qi, leaf_id, seed, score, exact in matches:
        where = f"{shown(ctx.root, paths[leaf_id])}:{seeds[leaf_id][seed][0]}"
        found.setdefault((qi, exact), []).append((score, where))
    for (qi, exact), others in sorted(found.items()):
        leaf, example = queries[qi]
        others.sort(key=lambda o: -o[0])
        named = ", ".join(where if exact else f"{where} (ROUGE-L {score:.2f})"
                          for score, where in others[:SHOWN_MATCHES])
        more = f" and {len(others) - SHOWN_MATCHES} more" if len(others) > SHOWN_MATCHES else ""
        what = "question (with its context)" if seed_prompt(leaf, example) != example.question else "question"
        subject = sim.normalize(seed_prompt(leaf, example))
        if exact:
            yield DUPLICATE_ACROSS.at(leaf.file, example.pos, f"{what} repeats the seed at {named}{more}", subject)
        else:
            yield SIMILAR_ACROSS.at(leaf.file, example.pos, f"{what} is a near-duplicate (ROUGE-L >= {limit}) "
                                                            f"of the seed at {named}{more}", subject)


@lru_cache(maxsize=1)
def _mtbench() -> MTBenchIndex:
    """The packaged MT-Bench index, read once per process (MTBenchUnavailable when it cannot be)."""
    return MTBenchIndex()


def _contamination_texts(leaf: Leaf) -> list[tuple[tuple[int, int], str, str]]:
    """(position, what, text) of everything a leaf would teach: each seed's question
    and answer (a knowledge leaf's every Q&A) and each seed's context."""
    texts = [t for e in leaf.examples for t in ((e.pos, "question", e.question), (e.answer_pos, "answer", e.answer))]
    seeds = leaf.doc.data.get("seed_examples")
    for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
        if isinstance(seed, dict) and isinstance(seed.get("context"), str):
            texts.append((leaf.doc.pos(("seed_examples", i, "context")), "context", seed["context"]))
    return [t for t in texts if t[2].strip()]


@taxonomy_check
def check_mtbench_contamination(leaves: Sequence[Leaf], ctx: Context) -> Iterator[Finding]:
    texts = [(leaf, *text) for leaf in leaves for text in _contamination_texts(leaf)]
    if not texts:
        return
    try:
        mtbench = _mtbench()
    except MTBenchUnavailable as exc:
        yield MTBENCH_UNAVAILABLE.at(leaves[0].file, (1, 1), f"MT-Bench contamination not checked: {exc}")
        return
    turns = mtbench.turns
    limit, n = ctx.threshold(CONTAMINATION_ROUGE_L), ctx.threshold(CONTAMINATION_NGRAM)
    unique = list(dict.fromkeys(t for *_, t in texts))  # leaves repeat texts (copies, versions)
    vocab = ctx.memo("vocabulary", sim.Vocabulary)
    queries = [vocab.encode(t) for t in unique]
    near: dict[str, tuple[float, int]] = {}
    for ui, turn_i, score in sim.join(queries, mtbench.encoded(vocab), limit):
        near.setdefault(unique[ui], (score, turn_i))
    rest = [t for t in unique if t not in near]
    shared = dict(zip(rest, mtbench.first_shared([sim.words(t) for t in rest], n)))
    for leaf, pos, what, text in texts:
        if text in near:
            score, turn_i = near[text]
            qid, category, turn = turns[turn_i]
            yield CONTAMINATION.at(leaf.file, pos, f"{what} matches MT-Bench question {qid} ({category}) turn "
                                                   f"{turn}: ROUGE-L {score:.2f} >= {limit}",
                                   f"{what} {sim.normalize(text)}")
        elif shared[text] is not None:
            gram, turn_i = shared[text]
            qid, category, turn = turns[turn_i]
            yield CONTAMINATION.at(leaf.file, pos, f"{what} shares {n} words with MT-Bench question {qid} "
                                                   f"({category}) turn {turn}: \"{gram}\"",
                                   f"{what} {sim.normalize(text)}")
