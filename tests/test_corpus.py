"""lab-hooks against InstructLab's own verdicts on 2,115 real historical leaves.

The corpus lives beside the clone (../shared/corpus); these tests skip without it.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from lab_hooks.checks.config import Config, load_profile
from lab_hooks.checks.engine import check_files, load_for_check
from lab_hooks.checks.registry import load_checks
from lab_hooks.checks.jsonschema_lite import iter_errors
from lab_hooks.checks.schema import load_schema, schema_tree, schema_version
from lab_hooks.taxonomy.load import LeafError, parse_leaf, read_bounded

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus" / "instructlab-taxonomy-history"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")

SCHEMA_CODES = {"LH102", "LH110", "LH111", "LH112", "LH113", "LH114", "LH115", "LH116"}


def instructlab_is_wrong(row: dict) -> str | None:
    """Why InstructLab's rejection of this version is its own bug, if it is one.
    (Its two other bugs, the crash cascade and letting an empty file pass, make it
    accept too much, so they never appear here.)"""
    parts = row["path"].split("/")
    if parts[0].endswith("_skills") and "knowledge" in parts[1:-1]:
        return "a `knowledge` folder inside a skills path switches it to the knowledge schema"
    return None


@pytest.fixture(scope="module")
def verdicts():
    """(row, our error codes, the instructlab profile's error codes, version 1?) for every
    corpus version, each checked as its own taxonomy (its tree is the root) as
    InstructLab saw it: every per-leaf check, none across leaves (a one-leaf taxonomy
    has no other leaf to compare with)."""
    load_checks()
    instructlab = load_profile("instructlab")
    out = []
    for line in open(CORPUS / "anchor_verdicts.jsonl"):
        row = json.loads(line)
        root = CORPUS / row["tree"]
        file = str(root / row["path"])
        codes = []
        for config in (Config(), instructlab):
            report = check_files([file], root, config, taxonomy_wide=False)
            assert not report.internal_errors, report.internal_errors
            codes.append({f.code for f in report.findings if f.is_error})
        try:
            version_1 = schema_version(load_for_check(file, root).version) == 1
        except LeafError:
            version_1 = None
        out.append((row, codes[0], codes[1], version_1))
    return out


def section(title: str) -> str:
    """One `## title` section of docs/validation.md."""
    text = (REPO / "docs" / "validation.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def test_we_reject_every_version_instructlab_rejects(verdicts):
    missed = [(row["tree"], row["path"], row["check_all_own_version"]["kinds"])
              for row, codes, _, _ in verdicts
              if row["check_all_own_version"]["rc"] and not codes and not instructlab_is_wrong(row)]
    assert missed == []


def test_schema_verdicts_agree_with_instructlab(verdicts):
    """Where InstructLab ran its schema, we find a schema error exactly when it did."""
    disagree = []
    for row, codes, _, _ in verdicts:
        kinds = row["check_all_own_version"]["kinds"]
        if any(k.startswith(("crash", "top-level", "empty", "file name")) for k in kinds) or instructlab_is_wrong(row):
            continue  # InstructLab never reached its schema
        theirs = any(re.match(r"(schema:|deprecated schema|cannot load schema)", k) for k in kinds)
        if theirs != bool(codes & SCHEMA_CODES):
            disagree.append((row["tree"], row["path"], kinds, sorted(codes)))
    assert disagree == []


def test_counts_in_docs_match(verdicts):
    """docs/validation.md's table of what InstructLab accepts and we reject is measured, not claimed."""
    counts, newer = Counter(), Counter()
    rejected = 0
    for row, codes, _, version_1 in verdicts:
        if not row["check_all_own_version"]["rc"]:
            counts.update(codes)
            newer.update(codes if version_1 is False else ())
            rejected += bool(codes)
    text = section("What InstructLab accepts and we reject")
    assert f"lab-hooks rejects {rejected:,} of them" in text, rejected
    documented = {code: (int(n), int(m)) for code, n, m in re.findall(r"^\| (LH\d{3}) \| [^|]+ \| (\d+) \| (\d+) \|",
                                                                        text, re.M)}
    assert documented == {code: (n, newer[code]) for code, n in counts.items()}, \
        f"update docs/validation.md: {sorted((c, n, newer[c]) for c, n in counts.items())}"


def test_the_instructlab_profile_agrees_with_instructlab(verdicts):
    """`profile: instructlab` disagrees with InstructLab's verdicts on at most 1 % of the
    corpus in each direction, and docs/validation.md names every version it disagrees on."""
    accepted = [(row, ours) for row, _, ours, _ in verdicts if not row["check_all_own_version"]["rc"]]
    rejected = [(row, ours) for row, _, ours, _ in verdicts if row["check_all_own_version"]["rc"]]
    we_reject = [row["tree"] for row, ours in accepted if ours]
    we_accept = [row["tree"] for row, ours in rejected if not ours]
    assert len(we_reject) <= len(accepted) / 100 and len(we_accept) <= len(rejected) / 100
    text = section("The instructlab profile")
    assert (f"Of the {len(accepted):,} versions InstructLab accepts, the profile rejects {len(we_reject)} "
            f"({len(we_reject) / len(accepted):.2%})") in text
    assert (f"of the {len(rejected):,} it rejects, the profile accepts {len(we_accept)} "
            f"({len(we_accept) / len(rejected):.2%})") in text
    assert set(re.findall(r"`trees/([0-9a-f]{12})`", text)) == {t.split("/")[1] for t in we_reject + we_accept}


def test_seed_pair_distribution_in_docs(verdicts):
    """The ROUGE-L distribution of seed pairs in the leaves InstructLab accepted, as docs/validation.md gives it."""
    from lab_hooks.checks import similarity as sim
    from lab_hooks.checks.seedindex import seed_prompt

    vocab = sim.Vocabulary()
    questions, seeds = [], []  # per leaf: its pairs' scores
    for row, _, _, _ in verdicts:
        if row["check_all_own_version"]["rc"]:
            continue
        try:
            leaf = load_for_check(str(CORPUS / row["tree"] / row["path"]), CORPUS / row["tree"])
        except LeafError:
            continue
        examples = [e for e in leaf.examples if e.question.strip()]
        if len(examples) < 2:
            continue
        q = [vocab.encode(seed_prompt(leaf, e)) for e in examples]
        questions.append([score for *_, score in sim.pairwise_scores(q)])
        seeds.append([score for *_, score in sim.pairwise_scores(
            [t + vocab.encode(e.answer) for t, e in zip(q, examples)])])
    pairs = sum(map(len, questions))
    rows = []
    for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0):
        cells = []
        for per_leaf in (questions, seeds):
            n = sum(s >= t for scores in per_leaf for s in scores)
            leaves = sum(any(s >= t for s in scores) for scores in per_leaf)
            cells += [f"{n:,} ({n / pairs:.1%})", f"{leaves:,} ({leaves / len(per_leaf):.1%})"]
        rows.append(f"| ≥ {t} | " + " | ".join(cells) + " |")
    text = section("Calibration: what real reviewers merged")
    assert f"{len(questions):,} versions InstructLab accepts that have two seeds or more ({pairs:,} pairs" in text
    assert "\n".join(rows) in text, "\n".join(rows)


def test_lite_evaluator_matches_jsonschema():
    """Our in-process evaluator finds the same failing paths and keywords as the
    jsonschema library, on our schema files, for every parseable corpus version."""
    from jsonschema import Draft202012Validator

    validators = {}
    compared = 0
    for path in sorted(CORPUS.glob("trees/*/**/qna.y*ml")):
        try:
            leaf = parse_leaf(read_bounded(path), path.relative_to(CORPUS).as_posix())
        except LeafError:
            continue
        data = leaf.doc.data
        version = schema_version(data.get("version"))
        schema = load_schema(version, schema_tree(leaf)) if version > 0 else None
        if schema is None:
            continue
        key = (version, schema_tree(leaf))
        validator = validators.setdefault(key, Draft202012Validator(schema))
        theirs = {(tuple(e.absolute_path), e.validator) for e in validator.iter_errors(data)}
        ours = {(e.path, e.keyword) for e in iter_errors(schema, data)}
        # after a type error our evaluator stops; jsonschema may add `const` on the same value
        theirs -= {(p, "const") for p, k in ours if k == "type"}
        assert ours == theirs, path
        compared += 1
    assert compared > 1400


def test_the_merged_synonyms_pr_is_not_refused_by_default():
    """A real merged PR: five seeds 'List two/three/four/five synonyms for the word ...'.
    Templates with one word changed are a warning by default, not a refusal; the stricter
    setting is one line of .lab-hooks.yaml."""
    load_checks()
    root = CORPUS / "trees/164597c3a55c"
    leaf = root / "compositional_skills/linguistics/synonyms/qna.yaml"
    report = check_files([str(leaf)], root, Config())
    assert report.errors == 0 and {"LH601", "LH602"} <= {f.code for f in report.findings}
    strict = Config(severities={"LH601": "error"})
    assert check_files([str(leaf)], root, strict).errors > 0
