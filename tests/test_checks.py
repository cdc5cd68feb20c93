"""Each check on a small change to a clean sample leaf: the rule code, and the
line:col the diagnostic points at."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab_hooks.checks.config import ConfigError, load_config
from lab_hooks.checks.engine import check_files

TAXONOMY = Path(__file__).resolve().parent.parent / "taxonomy"
HAIKU = "compositional_skills/writing/freeform/haiku"
MEETING = "compositional_skills/writing/grounded/meeting_summary"
TARDIGRADES = "knowledge/science/biology/tardigrades"


@pytest.fixture
def taxonomy(tmp_path):
    root = tmp_path / "taxonomy"
    shutil.copytree(TAXONOMY, root)
    return root


def edit(root: Path, leaf: str, old: str, new: str, count: int = 1) -> str:
    path = root / leaf / "qna.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))
    return str(path)


def findings(root: Path, *files: str):
    report = check_files(list(files), root, taxonomy_wide=False)
    assert not report.internal_errors
    return [(f.code, f.severity, f.line, f.col) for f in report.findings]


CASES = [
    # schema: each error at the node it is about
    (HAIKU, "version: 3\n", "", [("LH101", "error", 1, 1)]),  # then version 1, as InstructLab: no minimum of seeds
    (HAIKU, "version: 3", "version: 4", [("LH102", "error", 1, 10)]),
    (HAIKU, "version: 3", "version: .inf", [("LH112", "error", 1, 10)]),
    (HAIKU, "version: 3", "version: true", [("LH112", "error", 1, 10)]),
    (TARDIGRADES, "version: 3", "version: 2", [("LH102", "error", 1, 10)]),
    (HAIKU, "created_by: lab-hooks\n", "", [("LH110", "error", 1, 1)]),
    (HAIKU, "seed_examples:\n", "tags: [poetry]\nseed_examples:\n", [("LH111", "error", 6, 1)]),
    (HAIKU, "    answer: |\n      Bees", "    hint: honey\n    answer: |\n      Bees", [("LH111", "error", 13, 5)]),
    (HAIKU, "created_by: lab-hooks", "created_by: [a, b]", [("LH112", "error", 2, 13)]),
    (HAIKU, "created_by: lab-hooks", "created_by: ''", [("LH113", "error", 2, 13)]),
    (HAIKU, "Write a haiku about how bees make honey.", "Write a haiku about why the sky is blue.", []),
    # lint
    (HAIKU, "created_by: lab-hooks", "created_by: lab-hooks \t", [("LH201", "error", 2, 22)]),
    (HAIKU, "created_by: lab-hooks\n", "created_by: lab-hooks\r\n", [("LH203", "error", 2, 22)]),
    (HAIKU, "version: 3\n", "version: 3\nversion: 3\n", [("LH204", "error", 2, 1)]),
    (HAIKU, "created_by: lab-hooks\n", "created_by: lab\n \thooks\n", [("LH205", "error", 3, 2)]),
    (HAIKU, "seed_examples:\n", "\n\n\nseed_examples:\n", [("LH207", "warning", 8, 1)]),
    (HAIKU, "version: 3\n", "\nversion: 3\n", [("LH207", "warning", 1, 1)]),
    (MEETING, "seed_examples:\n  - context", "extra:\n    a: 1\nseed_examples:\n  - context",
     [("LH111", "error", 7, 1), ("LH206", "warning", 10, 3)]),  # the first indentation sets the width
    # content
    (MEETING, "  - context: |\n      Weekly sync", "  - notes: |\n      Weekly sync",
     [("LH111", "error", 8, 5), ("LH401", "error", 8, 5)]),
    (HAIKU, "  - question: Write a haiku about how bees make honey.\n",
     "  - question: Write a haiku about how bees make honey.\n    context: Bees.\n", [("LH402", "warning", 13, 5)]),
    (TARDIGRADES, "  repo: .", "  repo: git@github.com:x/y.git", [("LH405", "error", 148, 9)]),
    (TARDIGRADES, "  repo: .\n  commit: HEAD", "  repo: https://github.com/x/y\n  commit: HEAD", [("LH406", "error", 149, 11)]),
    *[(TARDIGRADES, "  repo: .\n  commit: HEAD", f"  repo: {url}\n  commit: {'a' * 40}", [("LH408", "error", 148, 9)])
      for url in ("https://10.0.0.1/docs.git", "https://169.254.169.254/latest/meta-data", "https://[::1]/x.git",
                  "https://localhost/x.git", "https://2130706433/x.git", "https://evil.example/x.git",
                  "https://user:token@github.com/x/y.git", "https://metadata.google.internal/x")],
    (TARDIGRADES, "  repo: .\n  commit: HEAD", f"  repo: https://github.com/x/y.git\n  commit: {'a' * 40}", []),
    (TARDIGRADES, "    - documents/tardigrades.md", "    - ../secret.md", [("LH407", "error", 151, 7)]),
    (TARDIGRADES, "    - documents/tardigrades.md", "    - /etc/passwd", [("LH407", "error", 151, 7)]),
    (TARDIGRADES, "    - documents/tardigrades.md", "    - documents/*.txt", [("LH407", "error", 151, 7)]),
    (TARDIGRADES, "    - documents/tardigrades.md", "    - documents/a**b", [("LH407", "error", 151, 7)]),
]


@pytest.mark.parametrize("leaf, old, new, expected", CASES)
def test_check(taxonomy, leaf, old, new, expected):
    file = edit(taxonomy, leaf, old, new)
    got = [f for f in findings(taxonomy, file) if f[0] not in ("LH601", "LH602", "LH603")]
    assert got == expected


def test_final_newline(taxonomy):
    file = edit(taxonomy, HAIKU, "the real foe.\n", "the real foe.")
    assert findings(taxonomy, file)[-1] == ("LH202", "error", 36, 28)


def test_file_and_folder_names(taxonomy):
    leaf = taxonomy / HAIKU
    (leaf / "qna.yaml").rename(leaf / "qna.yml")
    assert ("LH301", "error", 1, 1) in findings(taxonomy, str(leaf / "qna.yml"))
    moved = taxonomy / "compositional_skills/writing/Free Form"
    shutil.move(str(leaf.parent), str(moved))
    assert ("LH302", "warning", 1, 1) in findings(taxonomy, str(moved / "haiku/qna.yml"))
    outside = taxonomy / "misc/haiku"
    shutil.copytree(moved / "haiku", outside)
    assert ("LH304", "error", 1, 1) in findings(taxonomy, str(outside / "qna.yml"))


def test_nested_leaves_are_reported_from_both_sides(taxonomy):
    inner = taxonomy / HAIKU / "more"
    shutil.copytree(taxonomy / MEETING, inner)
    assert ("LH303", "error", 1, 1) in findings(taxonomy, str(taxonomy / HAIKU / "qna.yaml"))
    assert ("LH303", "error", 1, 1) in findings(taxonomy, str(inner / "qna.yaml"))


def test_nesting_names_the_nearest_leaf_and_counts_the_rest(taxonomy, monkeypatch):
    monkeypatch.chdir(taxonomy)
    for below in ("b/deep/er", "a"):
        shutil.copytree(taxonomy / MEETING, taxonomy / HAIKU / below)
    outside = taxonomy.parent / "qna.yaml"  # a checked leaf above the root holds every leaf
    shutil.copy(taxonomy / HAIKU / "qna.yaml", outside)

    def nesting(*files):
        report = check_files([str(f) for f in files], taxonomy, taxonomy_wide=False)
        return {f.file: f.message.split(";")[0] for f in report.findings if f.code == "LH303"}

    deep = taxonomy / HAIKU / "b/deep/er/qna.yaml"
    assert nesting(taxonomy / HAIKU / "qna.yaml", deep) == {
        str(taxonomy / HAIKU / "qna.yaml"): f"holds another leaf below it ({HAIKU}/a/ and 1 more)",
        str(deep): f"inside the leaf folder {HAIKU}/",
    }
    assert nesting(taxonomy / MEETING / "qna.yaml") == {}
    found = nesting(outside, taxonomy / TARDIGRADES / "qna.yaml")
    assert found[str(outside)].startswith("holds another leaf below it (compositional_skills/")
    assert found[str(taxonomy / TARDIGRADES / "qna.yaml")] == "inside the leaf folder ../"


@pytest.mark.parametrize("attribution, code, severity", [
    (None, "LH403", "error"), ("  \n", "LH403", "error"), ("Title of work: x\nCreator names: y\n", "LH404", "warning"),
])
def test_attribution(taxonomy, attribution, code, severity):
    path = taxonomy / HAIKU / "attribution.txt"
    path.unlink()
    if attribution is not None:
        path.write_text(attribution)
    assert findings(taxonomy, str(taxonomy / HAIKU / "qna.yaml")) == [(code, severity, 1, 1)]


def test_length_budgets(taxonomy):
    long_answer = "word " * 999 + "end"
    file = edit(taxonomy, HAIKU, "      the whole sky glows blue.", f"      {long_answer}")
    assert findings(taxonomy, file) == [("LH501", "error", 7, 15)]
    file = edit(taxonomy, TARDIGRADES, "          Eight: a tardigrade", "          " + "very " * 260 + "Eight: a tardigrade")
    context = "      Tardigrades, also called"
    file = edit(taxonomy, TARDIGRADES, context, context.replace("Tardigrades,", "big " * 500 + "Tardigrades,"))
    assert [f[:2] for f in findings(taxonomy, file)] == [("LH502", "warning"), ("LH503", "warning")]


def test_config_threshold_changes_the_budget(taxonomy):
    (taxonomy / ".lab-hooks.yaml").write_text("thresholds:\n  max_seed_chars: 60\n")
    from lab_hooks.checks.config import load_config

    report = check_files([str(taxonomy / HAIKU / "qna.yaml")], taxonomy, load_config(taxonomy), taxonomy_wide=False)
    assert {f.code for f in report.findings} == {"LH501"}


def test_knowledge_folder_inside_a_skill_keeps_the_skill_schema(taxonomy):
    # InstructLab switches such a leaf to the knowledge schema and rejects it
    moved = taxonomy / "compositional_skills/trivia/knowledge/haiku"
    shutil.copytree(taxonomy / HAIKU, moved)
    shutil.rmtree(taxonomy / HAIKU)
    assert findings(taxonomy, str(moved / "qna.yaml")) == []


def test_document_hosts_come_from_the_taxonomy_config(taxonomy):
    """`document_hosts` replaces the default list: a listed host passes, github.com then does not."""
    file = edit(taxonomy, TARDIGRADES, "  repo: .\n  commit: HEAD", f"  repo: https://git.example.org/d.git\n  commit: {'a' * 40}")
    assert findings(taxonomy, file) == [("LH408", "error", 148, 9)]
    (taxonomy / ".lab-hooks.yaml").write_text("document_hosts: [git.example.org]\n")
    listed = check_files([file], taxonomy, load_config(taxonomy), taxonomy_wide=False)
    assert [f.code for f in listed.findings] == []
    edit(taxonomy, TARDIGRADES, "https://git.example.org/d.git", "https://github.com/x/y.git")
    unlisted = check_files([file], taxonomy, load_config(taxonomy), taxonomy_wide=False)
    assert [(f.code, f.line, f.col) for f in unlisted.findings] == [("LH408", 148, 9)]
    (taxonomy / ".lab-hooks.yaml").write_text("document_hosts: github.com\n")
    with pytest.raises(ConfigError, match="document_hosts must be a list"):
        load_config(taxonomy)


def test_a_private_document_host_fails_validation_at_its_repo_line(taxonomy):
    file = edit(taxonomy, TARDIGRADES, "  repo: .\n  commit: HEAD", f"  repo: https://10.0.0.1/docs.git\n  commit: {'a' * 40}")
    out = subprocess.run([sys.executable, "-m", "lab_hooks", "validate", "--root", str(taxonomy), file],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{file}:148:9: error LH408" in out.stdout and "10.0.0.1 is a private address" in out.stdout, out.stdout
