"""`lab-hooks pr` and `promote` flags: bad numbers are usage errors (exit 2) before any work."""

from __future__ import annotations

import pytest

from lab_hooks.pr import main as pr_main
from lab_hooks.promote import main as promote_main


@pytest.mark.parametrize("flag, value, says", [
    ("--unchanged-leaves", "-1", "must be at least 0, got -1"),
    ("--answer-max-tokens", "0", "must be at least 1, got 0"),
    ("--quick", "many", "'many' is not an integer"),
])
def test_bad_numbers_are_usage_errors(flag, value, says, capsys, tmp_path):
    assert pr_main(["--base", "main", "--head", "pr", "--out", str(tmp_path), flag, value]) == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_promote_checks_its_numbers_too(capsys):
    assert promote_main(["--max-steps", "0"]) == 2
    assert "argument --max-steps: must be at least 1, got 0" in capsys.readouterr().err
