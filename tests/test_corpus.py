"""lab-hooks against InstructLab's own verdicts on 2,115 real historical leaves.

The corpus lives beside the clone (../shared/corpus); these tests skip without it.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from lab_hooks.checks.engine import check_files
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
    """(row, our error codes) for every corpus version, each checked as its own
    taxonomy (its tree is the root) as InstructLab saw it: every per-leaf check,
    none across leaves (a one-leaf taxonomy has no other leaf to compare with)."""
    out = []
    for line in open(CORPUS / "anchor_verdicts.jsonl"):
        row = json.loads(line)
        root = CORPUS / row["tree"]
        report = check_files([str(root / row["path"])], root, taxonomy_wide=False)
        assert not report.internal_errors, report.internal_errors
        out.append((row, {f.code for f in report.findings if f.is_error}))
    return out


def test_we_reject_every_version_instructlab_rejects(verdicts):
    missed = [(row["tree"], row["path"], row["check_all_own_version"]["kinds"])
              for row, codes in verdicts
              if row["check_all_own_version"]["rc"] and not codes and not instructlab_is_wrong(row)]
    assert missed == []


def test_schema_verdicts_agree_with_instructlab(verdicts):
    """Where InstructLab ran its schema, we find a schema error exactly when it did."""
    disagree = []
    for row, codes in verdicts:
        kinds = row["check_all_own_version"]["kinds"]
        if any(k.startswith(("crash", "top-level", "empty", "file name")) for k in kinds) or instructlab_is_wrong(row):
            continue  # InstructLab never reached its schema
        theirs = any(re.match(r"(schema:|deprecated schema|cannot load schema)", k) for k in kinds)
        if theirs != bool(codes & SCHEMA_CODES):
            disagree.append((row["tree"], row["path"], kinds, sorted(codes)))
    assert disagree == []


def test_counts_in_docs_match(verdicts):
    """docs/validation.md's table of what InstructLab accepts and we reject is measured, not claimed."""
    counts = Counter()
    rejected = 0
    for row, codes in verdicts:
        if not row["check_all_own_version"]["rc"]:
            counts.update(codes)
            rejected += bool(codes)
    text = (REPO / "docs" / "validation.md").read_text()
    assert f"lab-hooks rejects {rejected:,} of them" in text, rejected
    documented = dict(re.findall(r"^\| (LH\d{3}) \| [^|]+ \| (\d+) \|", text, re.M))
    assert {code: int(n) for code, n in documented.items()} == dict(counts), \
        f"update docs/validation.md: {sorted(counts.items())}"


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
