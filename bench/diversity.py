"""Benchmark: the exact near-duplicate pass against `rouge-score` brute force, and
the hook's latency on one changed leaf in a 2,000-leaf taxonomy, in one run.

1. Every seed question of ../shared/corpus: our all-pairs pass (tokenize +
   prefix-filtered join at ROUGE-L >= 0.7) on the whole corpus (target <= 5 s).
2. The anchor: brute force over all pairs with Google's `rouge-score` 0.1.2
   (the reference implementation; texts tokenized once, then its own LCS
   scorer `_score_lcs` per pair) on the largest prefix of the corpus it
   finishes within --budget seconds. Our pass on the same prefix, in the same
   run: both pair sets must be equal (indexes and scores); prints the speed
   ratio at equal size (target >= 100x).
3. Hook latency: a taxonomy of 2,000 real leaves; one leaf is changed before
   each of 20 runs of `lab-hooks validate LEAF` (interpreter start included,
   seed index warm). Median and max wall against the 300 ms budget; the
   anchor is the same run with no index (every leaf parsed, as without it).

    .venv/bin/python bench/diversity.py [--budget 180]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

from lab_hooks.checks import similarity as sim
from lab_hooks.taxonomy.load import LeafError, parse_leaf

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus" / "instructlab-taxonomy-history"
THRESHOLD = 0.7
HOOK_LEAVES = 2000
HOOK_RUNS = 20


def corpus_rows() -> list[dict]:
    with open(CORPUS / "index.tsv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def corpus_questions(rows: list[dict]) -> list[str]:
    questions = []
    for row in rows:
        try:
            leaf = parse_leaf((CORPUS / row["tree"] / row["path"]).read_bytes(), row["path"])
        except LeafError:
            continue
        questions += [e.question for e in leaf.examples]
    return questions


def our_pass(texts: list[str]) -> tuple[float, list[sim.Pair]]:
    start = time.perf_counter()
    pairs = sim.near_duplicate_pairs(texts, THRESHOLD)
    return time.perf_counter() - start, pairs


def rouge_score_pass(texts: list[str]) -> tuple[float, list[sim.Pair]]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    start = time.perf_counter()
    tokens = [scorer._tokenizer.tokenize(t) for t in texts]
    pairs = []
    for (i, a), (j, b) in combinations(enumerate(tokens), 2):
        score = rouge_scorer._score_lcs(a, b).fmeasure
        if score >= THRESHOLD:
            pairs.append((i, j, score))
    return time.perf_counter() - start, pairs


def largest_size(texts: list[str], budget: float) -> int:
    """How many texts rouge-score can brute-force within the budget, from a timed sample."""
    sample = texts[:300]
    seconds, _ = rouge_score_pass(sample)
    per_pair = seconds / (len(sample) * (len(sample) - 1) / 2)
    n = int((2 * budget / per_pair) ** 0.5)
    return min(n, len(texts))


def build_taxonomy(rows: list[dict], root: Path) -> list[Path]:
    """HOOK_LEAVES real leaves (versions that parse), each at its own path."""
    files = []
    for row in rows:
        source = CORPUS / row["tree"] / row["path"]
        try:
            parse_leaf(source.read_bytes(), row["path"])
        except LeafError:
            continue
        parent, name = os.path.split(row["path"])
        target = root / parent / row["blob_sha"][:12] / "qna.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        files.append(target)
        if len(files) == HOOK_LEAVES:
            break
    while len(files) < HOOK_LEAVES:  # fewer real versions than leaves: copies under new paths
        source = files[len(files) % len(files)]
        target = root / "compositional_skills" / "copies" / f"c{len(files)}" / "qna.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        files.append(target)
    return files


def hook_run(leaf: Path, root: Path, env: dict) -> float:
    cli = Path(sys.executable).with_name("lab-hooks")
    start = time.perf_counter()
    proc = subprocess.run([str(cli), "validate", str(leaf.relative_to(root))], cwd=root, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode == 2:
        raise SystemExit(f"lab-hooks validate failed: {proc.stderr.strip()}")
    return elapsed


def hook_latency(rows: list[dict]) -> None:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        root, home = Path(tmp) / "taxonomy", Path(tmp) / "home"
        files = build_taxonomy(rows, root)
        env = {**os.environ, "LAB_HOME": str(home)}
        os.environ["LAB_HOME"] = str(home)
        from lab_hooks.assets import AssetError, mtbench_questions

        try:
            mtbench_questions()  # cached once, as on a contributor's machine
        except AssetError as exc:
            print(f"  (MT-Bench not available, contamination check skipped: {exc})")
        leaf = files[len(files) // 2]
        original = leaf.read_text(encoding="utf-8")
        cold = hook_run(leaf, root, env)
        times = []
        for i in range(HOOK_RUNS):
            leaf.write_text(original + f"# edit {i}\n", encoding="utf-8")  # the changed leaf
            times.append(hook_run(leaf, root, env))
        median = statistics.median(times)
        print(f"hook on 1 changed leaf of {len(files)}: median {median * 1000:.0f} ms, max "
              f"{max(times) * 1000:.0f} ms over {HOOK_RUNS} runs (budget 300 ms: "
              f"{'met' if median <= 0.3 else 'MISSED'}); anchor, same run with no index "
              f"(every leaf parsed): {cold * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for the rouge-score brute force")
    parser.add_argument("--skip-hook", action="store_true", help="skip the hook-latency part")
    args = parser.parse_args()
    if not (CORPUS / "index.tsv").is_file():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    rows = corpus_rows()
    questions = corpus_questions(rows)
    print(f"corpus: {len(rows)} versions, {len(questions)} seed questions, threshold ROUGE-L >= {THRESHOLD}")

    full = [our_pass(questions) for _ in range(3)]
    seconds = statistics.median(s for s, _ in full)
    print(f"lab-hooks, whole corpus: {len(full[0][1])} pairs in {seconds:.3f} s (median of 3; target <= 5 s: "
          f"{'met' if seconds <= 5 else 'MISSED'}), {len(questions) * (len(questions) - 1) // 2:,} pairs judged")

    n = largest_size(questions, args.budget)
    subset = questions[:n]
    anchor_seconds, anchor_pairs = rouge_score_pass(subset)
    ours = [our_pass(subset) for _ in range(3)]
    our_seconds = statistics.median(s for s, _ in ours)
    same = ours[0][1] == sorted(anchor_pairs)
    print(f"rouge-score brute force, first {n} questions ({n * (n - 1) // 2:,} pairs): "
          f"{len(anchor_pairs)} pairs in {anchor_seconds:.1f} s")
    print(f"lab-hooks, same {n} questions: {len(ours[0][1])} pairs in {our_seconds:.3f} s; "
          f"pair sets {'IDENTICAL' if same else 'DIFFER'}")
    print(f"speed ratio at equal size: {anchor_seconds / our_seconds:,.0f}x (target >= 100x)")
    if not args.skip_hook:
        hook_latency(rows)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
