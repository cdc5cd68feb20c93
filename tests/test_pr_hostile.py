"""A hostile PR through the lab-pr job's own logic (action/run.sh in `pr` mode).

The PR carries code that writes a sentinel if anything runs it (pre-commit config,
Makefile, setup.py, a modified copy of our package, conftest/sitecustomize), a
symlinked leaf, and a leaf whose text tries to ping a team and issue workflow
commands. The job must run none of it, read the leaves as data, and post an
escaped comment that says which stage failed and why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from pr_repos import commit, git, init_repo, leaf_files, skill_leaf

ROOT = Path(__file__).resolve().parents[1]
HAIKU = "compositional_skills/writing/freeform/haiku"
HOSTILE_DIR = "compositional_skills/writing/freeform/@org-team"
EVIL_TEXT = "::set-output name=verdict::improved @org/team <img src=x onerror=alert(1)> [x](https://evil.example)"


def hostile_files(sentinel: Path) -> dict[str, str]:
    touch = f"open({str(sentinel)!r} + '-' + __name__, 'w').write('ran')\n"
    return {
        ".pre-commit-config.yaml": ("repos:\n- repo: local\n  hooks:\n  - id: evil\n    name: evil\n"
                                    f"    entry: touch {sentinel}-pre-commit\n    language: system\n    always_run: true\n"),
        "Makefile": "".join(f"{t}:\n\ttouch {sentinel}-make-{t}\n" for t in ("all", "test", "demo", "install")),
        "setup.py": touch,
        "conftest.py": touch,
        "sitecustomize.py": touch,
        "lab_hooks/__init__.py": touch + "__version__ = '0.1.0'\n",
        "lab_hooks/pr.py": touch + "def main(argv=None):\n    return 0\n",
        f"{HOSTILE_DIR}/qna.yaml": skill_leaf(EVIL_TEXT, [(f"{EVIL_TEXT} number {i}", "@org/team ::add-mask::x")
                                                         for i in range(3)]),
        f"{HOSTILE_DIR}/attribution.txt": f"Title of work: {EVIL_TEXT}\n",
    }


@pytest.fixture
def runner(tmp_path):
    """An upstream repo with PR #7's head under refs/pull/7/head, and the runner's
    checkout of the default branch only (what actions/checkout gives lab-pr)."""
    sentinel = tmp_path / "SENTINEL"
    upstream = init_repo(tmp_path / "upstream", leaf_files(HAIKU, "Write haiku on everyday scenes."))
    git(upstream, "checkout", "-qb", "pr")
    (upstream / "compositional_skills/writing/freeform/link").mkdir(parents=True)
    os.symlink("../../../../../../etc/passwd", upstream / "compositional_skills/writing/freeform/link/qna.yaml")
    head = commit(upstream, hostile_files(sentinel), "a hostile PR")
    git(upstream, "update-ref", "refs/pull/7/head", head)
    git(upstream, "checkout", "-q", "main")
    git(upstream, "branch", "-qD", "pr")
    checkout = tmp_path / "runner"
    subprocess.run(["git", "clone", "-q", str(upstream), str(checkout)], check=True)
    return {"tmp": tmp_path, "sentinel": sentinel, "head": head, "checkout": checkout}


def run_action(r: dict, pr: str = "7") -> tuple[subprocess.CompletedProcess, Path]:
    out = r["tmp"] / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ACTION_PATH": str(ROOT), "LAB_MODE": "pr", "LAB_BASE": "origin/main", "LAB_HEAD": r["head"],
           "LAB_PR": pr, "LAB_TEACHER": "embedded:smollm2-135m-instruct", "LAB_STUDENT": "embedded:smollm2-135m-instruct",
           "LAB_JUDGE": "embedded:smollm2-135m-instruct", "LAB_QUICK": "1", "LAB_RESULTS": str(out / "results.json"),
           "LAB_HOME_INPUT": str(r["tmp"] / "home"), "GITHUB_TOKEN": "", "GITHUB_ACTIONS": "true",
           "GITHUB_REPOSITORY": "acme/taxonomy", "GITHUB_RUN_ID": "42",
           "GITHUB_OUTPUT": str(r["tmp"] / "output"), "GITHUB_STEP_SUMMARY": str(r["tmp"] / "summary.md")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(["bash", str(ROOT / "action" / "run.sh")], cwd=r["checkout"], env=env,
                            capture_output=True, text=True, timeout=300)
    return result, out


def test_hostile_pr_runs_nothing_and_is_reported_escaped(runner):
    result, out = run_action(runner)
    assert result.returncode == 1, result.stderr
    ran = sorted(p.name for p in runner["tmp"].iterdir() if p.name.startswith("SENTINEL"))
    assert ran == [], f"PR code ran: {ran}"
    for planted in ("Makefile", "setup.py", ".pre-commit-config.yaml", "lab_hooks", "conftest.py", HOSTILE_DIR):
        assert not (runner["checkout"] / planted).exists(), f"{planted} was checked out"

    run = json.loads((out / "results.json").read_text())
    assert run["status"] == "failed" and run["failure"]["stage"] == "validate"
    assert any(f["file"] == f"{HOSTILE_DIR}/qna.yaml" for f in run["failure"]["findings"])
    assert {c["path"] for c in run["changed_leaves"]} == {f"{HOSTILE_DIR}/qna.yaml"}
    assert [s["path"] for s in run["skipped"]] == ["compositional_skills/writing/freeform/link/qna.yaml"]
    assert [s["name"] for s in run["stages"]] == ["diff", "validate", "report"]

    comment = (out / "comment.md").read_text()
    assert "### ❌ Stage `validate` failed" in comment
    assert not re.search(r"@(?!\u200b|&#8203;)[A-Za-z]", comment), "a live @mention"
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(comment)
    assert "<img" not in html and 'href="https://evil' not in html
    for text in (comment, result.stdout, result.stderr):
        for line in text.splitlines():
            assert not line.lstrip().startswith("::") or re.match(r"::(error|warning|notice) file=[^,:]+[,:]", line), line
    assert "verdict<<" in (runner["tmp"] / "output").read_text()
    assert "failed" in (runner["tmp"] / "output").read_text()
    assert (runner["tmp"] / "summary.md").read_text() == comment


def test_forged_pr_number_is_refused(runner):
    other = commit(runner["tmp"] / "upstream", leaf_files("compositional_skills/x/y", "Other leaf."), "other")
    git(runner["tmp"] / "upstream", "update-ref", "refs/pull/8/head", other)
    result, out = run_action(runner, pr="8")
    assert result.returncode == 1 and "not the validated" in result.stderr
    result, _ = run_action(runner, pr="7; touch /tmp/x")
    assert result.returncode == 2 and "digits" in result.stderr
    assert not (out / "results.json").exists()


def test_validate_mode_annotates_the_changed_leaves(runner):
    upstream = runner["tmp"] / "upstream"
    git(upstream, "checkout", "-q", runner["head"])  # the validate job checks out the PR (read-only token)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ACTION_PATH": str(ROOT), "LAB_MODE": "validate", "LAB_BASE": "main", "GITHUB_ACTIONS": "true"}
    result = subprocess.run(["bash", str(ROOT / "action" / "run.sh")], cwd=upstream, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    link = "compositional_skills/writing/freeform/link/qna.yaml"
    assert errors and all(e.startswith((f"::error file={HOSTILE_DIR}/qna.yaml,", f"::error file={link},"))
                          for e in errors)  # repo-relative
    assert [e for e in errors if link in e] == [  # a symlinked leaf is reported, never skipped
        f"::error file={link},line=1,col=1,title=LH001::LH001 is a symlink (to ../../../../../../etc/passwd); "
        "leaves must be regular files"]
    assert not any(line.startswith("::set-output") for line in result.stdout.splitlines())
