"""`lab-hooks validate --base REF`: only what a change adds is an error, on real git repositories."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from lab_hooks.checks.gitbase import BaseError, GitBase
from lab_hooks.cli import main
from pr_repos import commit, git, leaf_files, write

OLD = "compositional_skills/writing/old/qna.yaml"
# An InstructLab-era leaf: no version, no attribution, a trailing space, five seeds
# of which the last two repeat each other.
OLD_LEAF = """created_by: someone
task_description: name numbers
seed_examples:
  - question: What comes after one?\x20
    answer: Two comes after one.
  - question: What comes after five?
    answer: Six comes after five.
  - question: Which number is the largest of three, seven and four?
    answer: Seven.
  - question: How many legs does a spider have?
    answer: A spider has eight legs.
  - question: How many legs does a spider have?
    answer: A spider has eight legs!
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """main: an old leaf full of problems and a clean one; the working directory is the repository."""
    repo = tmp_path / "taxonomy"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {OLD: OLD_LEAF, **leaf_files("compositional_skills/writing/haiku", "Write haiku")}, "main")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return repo


def run(capsys, *argv) -> tuple[int, list[str], str]:
    rc = main(["validate", *argv])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


def test_old_problems_do_not_block_an_edit_elsewhere_in_the_leaf(repo, capsys):
    assert run(capsys, OLD)[0] == 1  # without a base, the old problems are errors
    write(repo, {OLD: OLD_LEAF.replace("Seven.", "Seven is the largest.")})
    rc, out, err = run(capsys, "--base", "HEAD", OLD)
    assert rc == 0, out
    assert not any(" error " in line for line in out), out
    assert {line.split()[2] for line in out if "warning" in line and "[pre-existing]" in line} == {
        "LH101", "LH201", "LH403", "LH610"}
    assert "0 errors, 5 warnings (4 pre-existing)" in err


def test_a_problem_the_change_adds_fails_at_its_line(repo, capsys):
    write(repo, {OLD: OLD_LEAF.replace("Seven.", "Seven.\x20\x20")})
    rc, out, _ = run(capsys, "--base", "HEAD", OLD)
    assert rc == 1
    assert [line for line in out if " error " in line] == [f"{OLD}:9:19: error LH201 trailing spaces"]


def test_an_appended_repeat_of_a_seed_fails_there(repo, capsys):
    extra = "  - question: What comes after five?\n    answer: Six comes after five!\n"
    write(repo, {OLD: OLD_LEAF + extra})
    rc, out, _ = run(capsys, "--base", "HEAD", OLD)
    assert rc == 1
    errors = [line for line in out if " error " in line]
    assert errors == [f"{OLD}:14:15: error LH610 seed repeats the seed at line 6: the same question, and answers "
                      "with ROUGE-L 1.00 >= 0.9; it adds nothing"]


def test_a_repeat_inserted_above_its_original_is_new_though_reported_on_an_old_line(repo, capsys):
    """The pair's finding sits on the later seed, an unchanged line; its identity (the two
    seeds' texts) did not exist at the base."""
    text = OLD_LEAF.replace("seed_examples:\n", "seed_examples:\n  - question: What comes after five?\n"
                                                 "    answer: Six comes after five!\n")
    write(repo, {OLD: text})
    rc, out, _ = run(capsys, "--base", "HEAD", OLD)
    assert rc == 1
    assert [line.split(":")[1] + " " + line.split()[2] for line in out if " error " in line] == ["8 LH610"]


def test_moving_every_line_keeps_every_finding_pre_existing(repo, capsys):
    write(repo, {OLD: "# a comment on top moves every line down\n" + OLD_LEAF})
    rc, out, _ = run(capsys, "--base", "HEAD", OLD)
    assert rc == 0 and sum("[pre-existing]" in line for line in out) == 4, out


def test_a_renamed_leaf_carries_its_findings_and_a_bad_new_name_is_new(repo, capsys):
    git(repo, "mv", "compositional_skills/writing/old", "compositional_skills/writing/numbers")
    new = "compositional_skills/writing/numbers/qna.yaml"
    rc, out, _ = run(capsys, "--base", "HEAD", new)
    assert rc == 0 and sum("[pre-existing]" in line for line in out) == 4, out
    commit(repo, {".lab-hooks.yaml": "rules:\n  path-name: error\n"}, "stricter")  # the base's rules apply
    git(repo, "mv", "compositional_skills/writing/numbers", "compositional_skills/writing/Numbers")
    write(repo, {"compositional_skills/writing/Numbers/qna.yaml": OLD_LEAF.replace("Seven.", "Seven!")})
    rc, out, _ = run(capsys, "--base", "HEAD", "compositional_skills/writing/Numbers/qna.yaml")
    assert rc == 1  # renamed and edited: still paired with the old leaf by its lines
    assert [line.split()[2] for line in out if " error " in line] == ["LH302"]


def test_a_change_cannot_relax_the_rules_or_baseline_it_is_judged_by(repo, capsys):
    """A hostile PR adds an error, lowers its rule and lists it in the baseline: with
    `--base`, the base's .lab-hooks.yaml and .lab-hooks-baseline.json apply."""
    assert main(["baseline"]) == 0
    commit(repo, {}, "the baseline")
    git(repo, "checkout", "-qb", "pr")
    write(repo, {OLD: OLD_LEAF.replace("Seven.", "Seven.\x20\x20")})
    assert main(["baseline"]) == 0  # the PR's baseline lists its own new error
    write(repo, {".lab-hooks.yaml": "rules:\n  trailing-spaces: off\n"})
    commit(repo, {}, "pr: a new error, excused by the PR itself")
    capsys.readouterr()
    assert main(["validate", OLD]) == 0  # its own rules excuse it
    rc, out, _ = run(capsys, "--base", "main", OLD)
    assert rc == 1 and [line for line in out if " error " in line] == [f"{OLD}:9:19: error LH201 trailing spaces"]
    assert any("[in baseline]" in line for line in out)  # the base's baseline still counts


def test_a_new_leaf_is_checked_in_full(repo, capsys):
    write(repo, {"compositional_skills/writing/copy/qna.yaml": OLD_LEAF})
    rc, out, _ = run(capsys, "--base", "HEAD", "compositional_skills/writing/copy/qna.yaml")
    assert rc == 1 and not any("pre-existing" in line for line in out)
    assert {line.split()[2] for line in out if " error " in line} >= {"LH101", "LH201", "LH403", "LH610", "LH604"}


def test_without_files_the_leaves_changed_since_the_merge_base_are_checked(repo, capsys):
    """A PR job: `--base main` on a branch; main moved on since the fork."""
    git(repo, "checkout", "-qb", "pr")
    commit(repo, {OLD: OLD_LEAF.replace("Seven.", "Seven is the largest.")}, "pr edits the old leaf")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"compositional_skills/writing/mains_own/qna.yaml": "version: 3\n"}, "main moves on")
    git(repo, "checkout", "-q", "pr")
    write(repo, {"compositional_skills/writing/untracked/qna.yaml": "version: 3\n",
                 "compositional_skills/writing/haiku/attribution.txt": "Title: only a title\n"})
    os.chdir(repo / "compositional_skills")  # anywhere inside the repository
    rc, out, _ = run(capsys, "--base", "main", "--format", "json")
    assert rc == 1
    report = json.loads("\n".join(out))
    files = {f["file"]: {(x["code"], x["severity"], x.get("note")) for x in f["findings"]} for f in report["files"]}
    assert set(files) == {"writing/old/qna.yaml", "writing/untracked/qna.yaml", "writing/haiku/qna.yaml"}
    assert {severity for _, severity, _ in files["writing/old/qna.yaml"]} == {"warning"}
    assert {code for code, _, note in files["writing/old/qna.yaml"] if note == "pre-existing"} == {
        "LH101", "LH201", "LH403", "LH610"}
    assert ("LH404", "warning", None) in files["writing/haiku/qna.yaml"]  # the attribution.txt the change wrote
    assert all(severity == "error" for _, severity, _ in files["writing/untracked/qna.yaml"])


def test_the_merge_base_is_gits(repo):
    """Criss-cross merges and a base that is behind: the same commit as `git merge-base`."""
    git(repo, "checkout", "-qb", "a")
    commit(repo, {"a1": "1"}, "a1")
    git(repo, "checkout", "-qb", "b", "main")
    commit(repo, {"b1": "1"}, "b1")
    git(repo, "merge", "-q", "--no-edit", "a")
    git(repo, "checkout", "-q", "a")
    git(repo, "merge", "-q", "--no-edit", "b~1")
    commit(repo, {"a2": "2"}, "a2")
    git(repo, "checkout", "-q", "b")
    commit(repo, {"b2": "2"}, "b2")
    for ref in ("a", "main", "b~1", "a~1", "b"):
        expected = git(repo, "merge-base", "--all", ref, "HEAD").split()
        with GitBase(ref) as base:
            assert base.commit in expected, ref


def test_a_shallow_clone_says_what_to_fetch(repo, tmp_path, monkeypatch):
    git(repo, "checkout", "-qb", "pr")
    commit(repo, {"x": "1"}, "pr")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"y": "1"}, "main 2")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{repo}", str(shallow)],
                   check=True, capture_output=True)
    monkeypatch.chdir(shallow)
    git(shallow, "checkout", "-q", "pr")
    with pytest.raises(BaseError, match="shallow clone.*fetch-depth: 0"):
        GitBase("origin/main")


def test_usage_errors_are_one_line(repo, capsys, tmp_path):
    rc, out, err = run(capsys, "--base", "no-such-ref", OLD)
    assert rc == 1 and out == [] and err.count("\n") == 1  # bad input (lab_hooks.flags)
    assert err.startswith("lab-hooks validate: base ref 'no-such-ref' is not a commit")
    os.chdir(tmp_path)  # not a repository
    rc, out, err = run(capsys, "--base", "HEAD")
    assert rc == 1 and err.startswith("lab-hooks validate: git cat-file failed:") and err.count("\n") == 1


def test_the_first_commit_of_a_repository_has_an_empty_base(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "new"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {OLD: OLD_LEAF})
    git(repo, "add", "-A")
    monkeypatch.chdir(repo)
    rc, out, _ = run(capsys, "--base", "HEAD", OLD)
    assert rc == 1 and not any("pre-existing" in line for line in out)


def test_one_git_process_per_run_whatever_the_number_of_files(repo, tmp_path, monkeypatch, capsys):
    changed = {f"compositional_skills/writing/leaf{i}/qna.yaml": OLD_LEAF.replace("one", f"one{i}")
               for i in range(30)}
    commit(repo, changed, "thirty old leaves")
    write(repo, {path: text.replace("Seven.", "Seven!") for path, text in changed.items()})
    git(repo, "mv", "compositional_skills/writing/leaf0", "compositional_skills/writing/moved")
    log = tmp_path / "git-calls"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    files = sorted(str(p.relative_to(repo)) for p in Path(repo).glob("compositional_skills/writing/*/qna.yaml"))
    rc, out, _ = run(capsys, "--base", "HEAD", *files)
    assert rc == 0 and out and not any(" error " in line for line in out), out
    assert log.read_text().splitlines() == ["cat-file --batch"]
    log.unlink()
    rc, out, _ = run(capsys, "--base", "HEAD")  # the changed leaves, found from the base's trees
    assert rc == 0 and len({line.split(":")[0] for line in out}) == 30
    assert log.read_text().splitlines() == ["cat-file --batch"]


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "instructlab-taxonomy-history"


@pytest.mark.skipif(not (CORPUS / "index.tsv").is_file(), reason=f"corpus not found at {CORPUS}")
def test_on_every_real_leaf_moving_its_lines_makes_no_finding_new(tmp_path, monkeypatch):
    """Each rule's identity survives an edit elsewhere: on all 2,115 corpus versions (one
    taxonomy, every check), a comment written on top of each file moves every line, and
    every error is still recognized as the base's."""
    import csv
    import shutil

    from lab_hooks.checks.config import Config
    from lab_hooks.checks.engine import check_files
    from lab_hooks.checks.gitbase import BaseLeaf
    from lab_hooks.checks.ratchet import mark_pre_existing

    monkeypatch.chdir(tmp_path)
    states = {}
    with open(CORPUS / "index.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            parent, name = os.path.split(row["path"])
            file = os.path.join(parent, row["blob_sha"][:12], name)
            os.makedirs(os.path.dirname(file), exist_ok=True)
            original = (CORPUS / row["tree"] / row["path"]).read_bytes()
            if not original.strip():
                continue  # an empty file with a comment is another finding (only comments)
            bom = b"\xef\xbb\xbf" * original.startswith(b"\xef\xbb\xbf")  # a BOM stays first
            moved = bom + b"# a comment on top\n" + original[len(bom):]
            Path(file).write_bytes(moved)
            attribution = CORPUS / row["tree"] / parent / "attribution.txt"
            text = None
            if attribution.is_file():
                shutil.copyfile(attribution, Path(file).parent / "attribution.txt")
                text = attribution.read_text(encoding="utf-8", errors="replace")
            states[file] = (moved, BaseLeaf("modified", file, original, text))
    report = check_files(list(states), ".", Config())
    errors = report.errors
    mark_pre_existing(report, ".", Config(), states)
    assert errors > 2000 and len(states) > 2100 and not report.internal_errors
    assert [f for f in report.findings if f.is_error] == []
