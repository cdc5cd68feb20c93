"""`lab-hooks baseline` and the baseline file `lab-hooks validate` reads."""

from __future__ import annotations

import json

import pytest

from lab_hooks.checks.baseline import BASELINE_FILE
from lab_hooks.cli import main
from test_ratchet import OLD, OLD_LEAF
from pr_repos import leaf_files, write

OTHER = "compositional_skills/writing/other/qna.yaml"


@pytest.fixture
def taxonomy(tmp_path, monkeypatch):
    root = tmp_path / "taxonomy"
    write(root, {OLD: OLD_LEAF, OTHER: OLD_LEAF.replace("spider", "cat"),
                 **leaf_files("compositional_skills/writing/haiku", "Write haiku")})
    monkeypatch.chdir(root)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return root


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


def test_a_baseline_lets_todays_errors_through_and_only_new_ones_block(taxonomy, capsys):
    assert run(capsys, "validate", ".")[0] == 1
    rc, out, _ = run(capsys, "baseline")
    assert rc == 0 and out == [f"{BASELINE_FILE}: 14 errors recorded (14 new, 0 no longer occur and were dropped) "
                               "from 3 leaves"]
    entries = json.loads((taxonomy / BASELINE_FILE).read_text())["findings"]
    assert {e["leaf"] for e in entries} == {OLD, OTHER} and all("line" not in e for e in entries)
    rc, out, err = run(capsys, "validate", ".")
    assert rc == 0 and sum("[in baseline]" in line for line in out) == 14 and "(14 in baseline)" in err
    # lines move and the file is edited elsewhere: still the baseline's findings
    write(taxonomy, {OLD: "# moved\n" + OLD_LEAF.replace("Seven.", "Seven is the largest.")})
    assert run(capsys, "validate", OLD)[0] == 0
    # a problem the baseline does not list
    write(taxonomy, {OLD: OLD_LEAF.replace("Seven.", "Seven.  ")})
    rc, out, _ = run(capsys, "validate", OLD)
    assert rc == 1 and [line for line in out if " error " in line] == [f"{OLD}:9:19: error LH201 trailing spaces"]


def test_fixed_problems_are_reported_and_dropped(taxonomy, capsys):
    run(capsys, "baseline")
    write(taxonomy, {OLD: "version: 3\n" + OLD_LEAF.replace("after one? ", "after one?")})
    rc, out, err = run(capsys, "validate", OLD, OTHER)
    assert rc == 0
    assert f"2 {BASELINE_FILE} entries of these leaves no longer occur: run `lab-hooks baseline`" in err
    rc, out, _ = run(capsys, "baseline", OLD)  # one leaf re-recorded: the other's entries are kept
    assert out == [f"{BASELINE_FILE}: 12 errors recorded (0 new, 2 no longer occur and were dropped) from 1 leaf"]
    rc, out, err = run(capsys, "validate", ".")
    assert rc == 0 and "no longer occur" not in err


def test_an_unreadable_baseline_is_one_line_and_exit_1(taxonomy, capsys):
    (taxonomy / BASELINE_FILE).write_text("{not json")
    for command in ("validate", "baseline"):
        rc, out, err = run(capsys, command, OLD)
        assert rc == 1 and out == [] and err.count("\n") == 1  # bad input (lab_hooks.flags)
        assert err.startswith(f"lab-hooks {command}: {BASELINE_FILE}: cannot read:")
