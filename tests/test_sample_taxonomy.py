"""The sample taxonomy other stages generate and train from: varied, and clean."""

from pathlib import Path

from lab_hooks.checks.engine import check_files
from lab_hooks.taxonomy.documents import glob_files, local_document_dir
from lab_hooks.taxonomy.leaf import Kind
from lab_hooks.taxonomy.load import find_leaf_files, load_leaf_file

ROOT = Path(__file__).resolve().parent.parent / "taxonomy"


def test_every_sample_leaf_passes_without_warnings():
    files = [str(p) for p in find_leaf_files(ROOT)]
    report = check_files(files, ROOT)
    assert report.findings == [] and report.internal_errors == []  # LH607 too: the MT-Bench index ships


def test_sample_covers_every_kind_of_leaf():
    leaves = [load_leaf_file(p, ROOT) for p in find_leaf_files(ROOT)]
    assert len(leaves) >= 8
    skills = [leaf for leaf in leaves if leaf.kind is Kind.COMPOSITIONAL]
    assert sum(leaf.grounded for leaf in skills) >= 3 and sum(not leaf.grounded for leaf in skills) >= 3
    assert any(leaf.kind is Kind.FOUNDATIONAL for leaf in leaves)
    knowledge = [leaf for leaf in leaves if leaf.kind is Kind.KNOWLEDGE]
    for leaf in knowledge:  # documents kept in the repo, found where the patterns say
        folder = local_document_dir(leaf.document["repo"], ROOT)
        assert folder and all(glob_files(folder, p) for p in leaf.document["patterns"])
    assert knowledge
    assert all(leaf.attribution for leaf in leaves)
    # seeds are all different, across the whole sample
    questions = [e.question.strip().lower() for leaf in leaves for e in leaf.examples]
    assert len(questions) == len(set(questions))
