"""The PR loop's validate stage judges a PR as the Action's validate job does: only what
the PR adds is an error, with the base's rules and baseline (real git repositories)."""

from __future__ import annotations

import pytest

from lab_hooks.diff import diff_taxonomy
from lab_hooks.errors import InputError
from lab_hooks.loop.run import StageFailed
from lab_hooks.loop.validate import validate
from pr_repos import commit, git, leaf_files
from test_ratchet import OLD, OLD_LEAF


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "taxonomy"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {OLD: OLD_LEAF, **leaf_files("compositional_skills/writing/haiku", "Write haiku")}, "main")
    return repo


def stage(repo, tmp_path, head: str):
    with diff_taxonomy(repo, "main", head) as changes:
        return validate(changes, tmp_path / f"work-{head}")


def test_a_pr_editing_an_old_leaf_passes_and_one_adding_a_problem_fails_at_it(repo, tmp_path):
    git(repo, "checkout", "-qb", "edit")
    commit(repo, {OLD: OLD_LEAF.replace("Seven.", "Seven is the largest.")}, "a typo")
    done = stage(repo, tmp_path, "edit")
    assert done.errors == 0 and done.warnings >= 4  # the old errors, now pre-existing warnings
    git(repo, "checkout", "-qb", "worse")
    commit(repo, {OLD: OLD_LEAF.replace("Seven.", "Seven.\x20\x20")}, "a new problem")
    with pytest.raises(StageFailed) as failed:
        stage(repo, tmp_path, "worse")
    assert [(f["file"], f["line"], f["code"]) for f in failed.value.findings] == [(OLD, 9, "LH201")]


def test_the_base_baseline_counts_and_the_prs_own_does_not(repo, tmp_path, monkeypatch):
    from lab_hooks.cli import main

    monkeypatch.chdir(repo)
    assert main(["baseline"]) == 0
    commit(repo, {}, "baseline")
    git(repo, "checkout", "-qb", "pr")
    commit(repo, {"compositional_skills/writing/copy/qna.yaml": OLD_LEAF}, "a copy of the old leaf")
    assert main(["baseline"]) == 0  # the PR lists its own leaf's errors
    commit(repo, {}, "pr: baseline")
    with pytest.raises(StageFailed) as failed:
        stage(repo, tmp_path, "pr")
    assert {f["file"] for f in failed.value.findings} == {"compositional_skills/writing/copy/qna.yaml"}


@pytest.mark.parametrize("name, text", [(".lab-hooks.yaml", "rules: [\n"), (".lab-hooks-baseline.json", "{not json\n")])
def test_a_broken_rules_or_baseline_file_of_the_base_is_named_at_the_base_commit(repo, tmp_path, name, text):
    """Not at the temporary folder the run wrote it to (gone when the user reads the report)."""
    base = commit(repo, {name: text}, "broken")
    git(repo, "checkout", "-qb", "pr")
    commit(repo, leaf_files("compositional_skills/writing/odes", "Write odes"), "odes")
    with pytest.raises(InputError) as failed:
        stage(repo, tmp_path, "pr")
    message = str(failed.value)
    assert message.startswith(f"{name} at {base[:12]}:") and str(tmp_path) not in message, message
