"""The real `pre-commit try-repo` installs our hook from this repository into its
own environment and runs it on a temporary taxonomy repository."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HAIKU = REPO / "taxonomy/compositional_skills/writing/freeform/haiku"
IDIOMS = REPO / "taxonomy/compositional_skills/linguistics/freeform/idioms"
PRE_COMMIT = Path(sys.executable).with_name("pre-commit")


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.slow
def test_pre_commit_try_repo(tmp_path):
    taxonomy = tmp_path / "taxonomy"
    good = taxonomy / "compositional_skills/writing/freeform/haiku"
    bad = taxonomy / "compositional_skills/writing/freeform/Bad Leaf"
    text = (IDIOMS / "qna.yaml").read_text()
    shutil.copytree(HAIKU, good)
    bad.mkdir(parents=True)
    (bad / "qna.yaml").write_text(text.replace("version: 3\n", "version: 3  \n") + "notes: x\n")
    shutil.copy(IDIOMS / "attribution.txt", bad)
    git(taxonomy, "init", "-q")
    git(taxonomy, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "GITHUB_ACTIONS": ""}

    def try_repo(*files):
        return subprocess.run([str(PRE_COMMIT), "try-repo", str(REPO), "lab-validate", "--files", *files],
                              cwd=taxonomy, env=env, capture_output=True, text=True, timeout=600)

    run = try_repo("compositional_skills/writing/freeform/haiku/qna.yaml",
                   "compositional_skills/writing/freeform/Bad Leaf/qna.yaml",
                   "compositional_skills/writing/freeform/Bad Leaf/attribution.txt")
    assert run.returncode == 1, run.stdout + run.stderr
    bad_file = "compositional_skills/writing/freeform/Bad Leaf/qna.yaml"
    assert f"{bad_file}:1:11: error LH201 trailing spaces" in run.stdout
    notes_line = len(text.splitlines()) + 1
    assert f"{bad_file}:{notes_line}:1: error LH111 unknown key 'notes'" in run.stdout
    assert f"{bad_file}:1:1: warning LH302 folder 'Bad Leaf'" in run.stdout
    assert "haiku/qna.yaml" not in run.stdout

    run = try_repo("compositional_skills/writing/freeform/haiku/qna.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Passed" in run.stdout
