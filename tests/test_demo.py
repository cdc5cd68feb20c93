"""`make demo`'s model-free parts: the pre-commit stage and the PR repository it builds
(the model-heavy rest is `lab-hooks pr`, covered by test_pr_e2e and timed by bench/demo.py)."""

from __future__ import annotations

from lab_hooks.demo import LEAF, TAXONOMY, break_leaf, build_repo, precommit_stage
from lab_hooks.diff import diff_taxonomy


def test_the_broken_leaf_shows_each_mistake_and_the_sample_taxonomy_is_clean(capsys):
    text = (TAXONOMY / LEAF / "qna.yaml").read_text()
    assert break_leaf(text) != text
    assert precommit_stage(TAXONOMY)  # clean exits 0, the broken copy exits 1
    out = capsys.readouterr().out
    broken = [line for line in out.splitlines() if line.startswith(f"{LEAF}/qna.yaml:")]
    # trailing spaces, repeated key, too few seeds, a number for text, a context in a freeform
    # skill, no final newline: each mistake break_leaf makes gets its line
    assert {line.split()[2] for line in broken} == {"LH201", "LH204", "LH114", "LH112", "LH402", "LH202"}, out


def test_the_pr_branch_adds_exactly_one_skill_leaf_with_the_same_commits_every_time(tmp_path):
    first = build_repo(TAXONOMY, tmp_path / "a")
    diff = diff_taxonomy(first, "main", "pr/limericks")
    assert [(c.status, c.path) for c in diff.leaves] == [
        ("added", "compositional_skills/writing/freeform/limericks/qna.yaml")]
    again = diff_taxonomy(build_repo(TAXONOMY, tmp_path / "b"), "main", "pr/limericks")
    assert (again.base, again.head) == (diff.base, diff.head)  # a rerun prints the same comment


def test_the_taxonomy_is_named_by_root_and_the_old_spelling_still_works(tmp_path, capsys):
    from lab_hooks.demo import build_parser, main

    assert "--root" in build_parser().format_help() and "--taxonomy" not in build_parser().format_help()
    for flag in ("--root", "--taxonomy"):  # --taxonomy: a hidden alias for one release
        assert main([flag, str(tmp_path / "nowhere")]) == 2  # before any model or store is touched
        assert f"{tmp_path / 'nowhere'}: no sample taxonomy there" in capsys.readouterr().err
