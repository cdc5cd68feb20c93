"""`lab-hooks pr` and `promote` flags: bad numbers are usage errors (exit 2) before any work."""

from __future__ import annotations

import pytest

from lab_hooks.pr import main as pr_main
from lab_hooks.promote import main as promote_main


@pytest.mark.parametrize("flag, value, says", [
    ("--unchanged-leaves", "-1", "must be at least 0, got -1"),
    ("--answer-max-tokens", "0", "must be at least 1, got 0"),
    ("--quick", "many", "'many' is not an integer"),
    ("--min-effect", "-0.1", "must not be negative, got -0.1"),
])
def test_bad_numbers_are_usage_errors(flag, value, says, capsys, tmp_path):
    assert pr_main(["--base", "main", "--head", "pr", "--out", str(tmp_path), flag, value]) == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_promote_checks_its_numbers_too(capsys):
    assert promote_main(["--max-steps", "0"]) == 2
    assert "argument --max-steps: must be at least 1, got 0" in capsys.readouterr().err


def test_the_minimum_effects_reach_the_evaluation_and_default_to_the_calibrated_ones():
    from lab_hooks.eval import Settings
    from lab_hooks.eval.reference import MIN_EFFECT
    from lab_hooks.pr import build_parser, options

    from lab_hooks.eval.reference import MIN_EFFECT_CONTROLS

    given = options(build_parser().parse_args(["--base", "main", "--head", "pr", "--min-effect", "0.3",
                                               "--min-effect-controls", "0.2"]))
    assert (Settings(**given.eval).min_effect, Settings(**given.eval).min_effect_controls) == (0.3, 0.2)
    default = Settings(**options(build_parser().parse_args(["--base", "main", "--head", "pr"])).eval)
    assert (default.min_effect, default.min_effect_controls) == (MIN_EFFECT, MIN_EFFECT_CONTROLS)
