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

With --findings it prints instead what the checks find on the corpus (the
numbers and examples of docs/validation.md's "Diversity and duplicates").
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
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


class Timer:
    """Wall and CPU seconds of a block. The machine is shared: CPU time is what
    the work costs, wall time what it took beside the other jobs."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def our_pass(texts: list[str]) -> tuple[Timer, list[sim.Pair]]:
    with Timer() as timer:
        pairs = sim.near_duplicate_pairs(texts, THRESHOLD)
    return timer, pairs


def rouge_score_pass(texts: list[str]) -> tuple[Timer, list[sim.Pair]]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    with Timer() as timer:
        tokens = [scorer._tokenizer.tokenize(t) for t in texts]
        pairs = []
        for (i, a), (j, b) in combinations(enumerate(tokens), 2):
            score = rouge_scorer._score_lcs(a, b).fmeasure
            if score >= THRESHOLD:
                pairs.append((i, j, score))
    return timer, pairs


def largest_size(texts: list[str], budget: float) -> int:
    """How many texts rouge-score can brute-force within the budget, from a timed sample."""
    sample = texts[:300]
    timer, _ = rouge_score_pass(sample)
    per_pair = timer.cpu / (len(sample) * (len(sample) - 1) / 2)  # CPU: steadier than wall on a shared machine
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


def hook_run(leaf: Path, root: Path, env: dict) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one `lab-hooks validate LEAF` process."""
    cli = Path(sys.executable).with_name("lab-hooks")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(cli), "validate", str(leaf.relative_to(root))], cwd=root, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode == 2:
        raise SystemExit(f"lab-hooks validate failed: {proc.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def hook_latency(rows: list[dict]) -> None:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        root, home = Path(tmp) / "taxonomy", Path(tmp) / "home"
        files = build_taxonomy(rows, root)
        # As installed for users: bytecode cached (the cold run below writes it).
        # An empty LAB_HOME: the MT-Bench index ships in the package, nothing is fetched.
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "LAB_HOME": str(home)}
        leaf = files[len(files) // 2]
        original = leaf.read_text(encoding="utf-8")
        cold_wall, cold_cpu = hook_run(leaf, root, env)
        runs = []
        for i in range(HOOK_RUNS):
            leaf.write_text(original + f"# edit {i}\n", encoding="utf-8")  # the changed leaf
            runs.append(hook_run(leaf, root, env))
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"hook on 1 changed leaf of {len(files)}, {HOOK_RUNS} runs: median wall {wall * 1000:.0f} ms "
              f"(min {min(w for w, _ in runs) * 1000:.0f}, max {max(w for w, _ in runs) * 1000:.0f}), median CPU "
              f"{cpu * 1000:.0f} ms (budget 300 ms wall: {'met' if wall <= 0.3 else 'MISSED'})")
        print(f"anchor, the same hook with no index yet (every leaf parsed): wall {cold_wall * 1000:.0f} ms, "
              f"CPU {cold_cpu * 1000:.0f} ms")


def findings(rows: list[dict]) -> None:
    """What LH601-LH610 find: per version (within a leaf, MT-Bench), and across
    the latest version of every leaf path taken as one taxonomy."""
    import json
    from collections import Counter

    from lab_hooks.checks import duplicates
    from lab_hooks.checks.context import Context
    from lab_hooks.checks.registry import RULES
    from lab_hooks.checks.seedindex import seed_prompt

    verdicts = {}
    with open(CORPUS / "anchor_verdicts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            verdicts[row["tree"]] = not row["check_all_own_version"]["rc"]
    per_code, accepted_codes, examples = Counter(), Counter(), {}
    latest: dict[str, tuple[str, object]] = {}
    parsed = 0
    for row in sorted(rows, key=lambda r: r["first_commit_date"]):
        try:
            leaf = parse_leaf((CORPUS / row["tree"] / row["path"]).read_bytes(), row["path"])
        except LeafError:
            continue
        parsed += 1
        latest[row["path"]] = (row["tree"], leaf)
        ctx = Context(CORPUS / row["tree"])
        found = list(duplicates.check_within_leaf(leaf, ctx)) + list(duplicates.check_mtbench_contamination([leaf], ctx))
        codes = {f.code for f in found if not hasattr(f, "value")}
        per_code.update(codes)
        if verdicts.get(row["tree"]):
            accepted_codes.update(c for c in codes if RULES[c].severity == "error")
        for f in found:
            if getattr(f, "code", None) in ("LH601", "LH602", "LH606", "LH610"):
                examples.setdefault(f.code, []).append(f"{row['path']} ({row['tree'][6:]}): {f.line}: {f.message}")
    print(f"{parsed} parseable versions; versions with each finding: {dict(sorted(per_code.items()))}")
    print(f"InstructLab-accepted versions we reject, by code: {dict(sorted(accepted_codes.items()))}")
    for code in ("LH601", "LH602", "LH606", "LH610"):
        for example in examples.get(code, [])[:: max(1, len(examples.get(code, [])) // 4)][:5]:
            print(f"  {code} {example}")
    # The latest version of each leaf path, as one taxonomy.
    prompts = [(path, e.pos[0], seed_prompt(leaf, e)) for path, (_, leaf) in sorted(latest.items())
               for e in leaf.examples if e.question.strip()]
    near = [(i, j, s) for i, j, s in sim.near_duplicate_pairs([p for *_, p in prompts], THRESHOLD)
            if prompts[i][0] != prompts[j][0]]
    exact = [(i, j, s) for i, j, s in near if sim.normalize(prompts[i][2]) == sim.normalize(prompts[j][2])]
    leaves = {frozenset((prompts[i][0], prompts[j][0])) for i, j, _ in near}
    print(f"snapshot: {len(latest)} leaf paths, {len(prompts)} seeds; across leaves: {len(exact)} exact duplicate "
          f"pairs, {len(near) - len(exact)} more near-duplicate pairs (ROUGE-L >= {THRESHOLD}), "
          f"between {len(leaves)} pairs of leaves")
    for i, j, s in (exact[:: max(1, len(exact) // 3)][:3] + [p for p in near if p not in exact][::40][:4]):
        print(f"  {s:.2f} {prompts[i][0]}:{prompts[i][1]} {prompts[i][2][:70]!r}\n"
              f"       {prompts[j][0]}:{prompts[j][1]} {prompts[j][2][:70]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for the rouge-score brute force")
    parser.add_argument("--skip-hook", action="store_true", help="skip the hook-latency part")
    parser.add_argument("--findings", action="store_true", help="print what the checks find on the corpus instead")
    args = parser.parse_args()
    if not (CORPUS / "index.tsv").is_file():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    rows = corpus_rows()
    if args.findings:
        findings(rows)
        return 0
    questions = corpus_questions(rows)
    print(f"corpus: {len(rows)} versions, {len(questions)} seed questions, threshold ROUGE-L >= {THRESHOLD}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    full = [our_pass(questions) for _ in range(3)]
    wall = statistics.median(t.wall for t, _ in full)
    cpu = statistics.median(t.cpu for t, _ in full)
    print(f"lab-hooks, whole corpus ({len(questions) * (len(questions) - 1) // 2:,} pairs judged): "
          f"{len(full[0][1])} pairs in {wall:.3f} s wall, {cpu:.3f} s CPU (median of 3; target <= 5 s: "
          f"{'met' if wall <= 5 else 'MISSED'})")

    n = largest_size(questions, args.budget)
    subset = questions[:n]
    anchor, anchor_pairs = rouge_score_pass(subset)
    ours = [our_pass(subset) for _ in range(3)]
    our_wall = statistics.median(t.wall for t, _ in ours)
    our_cpu = statistics.median(t.cpu for t, _ in ours)
    same = ours[0][1] == sorted(anchor_pairs)
    print(f"rouge-score brute force, first {n} questions ({n * (n - 1) // 2:,} pairs): "
          f"{len(anchor_pairs)} pairs in {anchor.wall:.1f} s wall, {anchor.cpu:.1f} s CPU")
    print(f"lab-hooks, same {n} questions: {len(ours[0][1])} pairs in {our_wall:.3f} s wall, {our_cpu:.3f} s CPU; "
          f"pair sets {'IDENTICAL' if same else 'DIFFER'}")
    print(f"speed ratio at equal size: {anchor.wall / our_wall:,.0f}x wall, {anchor.cpu / our_cpu:,.0f}x CPU "
          f"(target >= 100x)")
    if not args.skip_hook:
        hook_latency(rows)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
