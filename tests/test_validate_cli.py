"""`lab-hooks validate` end to end through `main(argv)`: exit codes, formats, many files."""

import json
from pathlib import Path

import pytest

from lab_hooks.cli import main

REPO = Path(__file__).resolve().parent.parent
HAIKU = REPO / "taxonomy/compositional_skills/writing/freeform/haiku"
GOOD = (HAIKU / "qna.yaml").read_text()
ATTRIBUTION = (HAIKU / "attribution.txt").read_text()
IDIOMS = (REPO / "taxonomy/compositional_skills/linguistics/freeform/idioms/qna.yaml").read_text()


def leaf(root, rel, text=GOOD, attribution=ATTRIBUTION):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if attribution is not None:
        (path.parent / "attribution.txt").write_text(attribution)
    return str(path.relative_to(root))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return tmp_path


def test_clean_leaf_exits_0(repo, capsys):
    good = leaf(repo, "compositional_skills/writing/freeform/haiku/qna.yaml")
    assert main(["validate", good]) == 0
    assert " error " not in capsys.readouterr().out


def test_bad_file_does_not_stop_the_others(repo, capsys):
    good = leaf(repo, "compositional_skills/writing/freeform/haiku/qna.yaml")
    broken = leaf(repo, "compositional_skills/writing/freeform/broken/qna.yaml", "version: 3\nseed_examples: [\n")
    bad = leaf(repo, "compositional_skills/linguistics/freeform/bad/qna.yaml", IDIOMS.replace("created_by: lab-hooks", "created_by: 7"))
    assert main(["validate", broken, good, bad, "missing/qna.yaml"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{bad}:2:13: error LH112 created_by: expected a string, got integer",
        f"{broken}:3:1: error LH003 while parsing a flow node did not find expected node content",
        "missing/qna.yaml:1:1: error LH001 cannot read: No such file or directory",
    ]


def test_github_format_is_automatic_under_actions(repo, capsys, monkeypatch):
    bad = leaf(repo, "compositional_skills/writing/freeform/bad/qna.yaml", GOOD.replace("version: 3", "version: 9"))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["validate", bad]) == 1
    assert capsys.readouterr().out.startswith(f"::error file={bad},line=1,col=10,title=LH102::LH102 ")


def test_json_format(repo, capsys):
    good = leaf(repo, "compositional_skills/writing/freeform/haiku/qna.yaml")
    assert main(["validate", "--format", "json", good]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"][0]["file"] == good and out["files"][0]["findings"] == []
    assert (out["errors"], out["warnings"]) == (0, 0)


def test_config_can_lower_an_error_to_a_warning(repo, capsys):
    bad = leaf(repo, "compositional_skills/writing/freeform/bad/qna.yaml", GOOD + "notes: hi\n")
    assert main(["validate", bad]) == 1
    (repo / ".lab-hooks.yaml").write_text("rules:\n  unknown-key: warning\n")
    capsys.readouterr()
    assert main(["validate", bad]) == 0
    assert "warning LH111 unknown key 'notes'" in capsys.readouterr().out


def test_the_instructlab_profile_skips_lint_and_attribution_for_version_1_leaves(repo, capsys):
    """As InstructLab does: yamllint and the attribution check run for `version:` 2 and 3 only."""
    (repo / ".lab-hooks.yaml").write_text("profile: instructlab\n")
    spaced = GOOD.replace("Write a haiku about why the sky is blue.", "Write a haiku about why the sky is blue.  ")
    old = leaf(repo, "compositional_skills/writing/freeform/old/qna.yaml", spaced.replace("version: 3\n", ""), None)
    new = leaf(repo, "compositional_skills/writing/freeform/new/qna.yaml", spaced, None)
    assert main(["validate", old]) == 0
    found = {tuple(line.split()[1:3]) for line in capsys.readouterr().out.splitlines()}
    assert {("warning", "LH101"), ("warning", "LH403"), ("warning", "LH201")} <= found
    assert main(["validate", new]) == 1
    assert {line.split()[2] for line in capsys.readouterr().out.splitlines() if " error " in line} == {"LH201", "LH403"}


@pytest.mark.parametrize("argv", [["validate", "--format", "xml", "a"], ["validate", "--root", "/nonexistent", "a"]])
def test_usage_errors_exit_2(repo, argv, capsys):
    assert main(argv) == 2


def test_bad_config_is_bad_input_exit_1(repo, capsys):
    (repo / ".lab-hooks.yaml").write_text("rules:\n  LH999: off\n")
    assert main(["validate", leaf(repo, "compositional_skills/a/qna.yaml")]) == 1
    assert "unknown rule 'LH999'" in capsys.readouterr().err


def test_a_crashing_check_is_an_internal_error_and_the_rest_still_runs(repo, capsys):
    from lab_hooks.checks.registry import LEAF_CHECKS, load_checks

    def broken_check(leaf, ctx):
        raise RuntimeError("bug")

    load_checks()
    bad = leaf(repo, "compositional_skills/linguistics/freeform/bad/qna.yaml", IDIOMS + "notes: x\n")
    LEAF_CHECKS.insert(0, broken_check)
    try:
        assert main(["validate", bad]) == 2
    finally:
        LEAF_CHECKS.remove(broken_check)
    out, err = capsys.readouterr()
    assert "LH111 unknown key 'notes'" in out
    assert f"internal error: {bad}: check " in err and "broken_check crashed: RuntimeError: bug" in err
