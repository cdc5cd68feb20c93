"""docs/adoption.md, step by step, on a taxonomy repository full of old problems: real git,
a real `pre-commit` that installs lab-hooks from this repository into a fresh environment,
and every commit after the install made with networking impossible."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pr_repos import ATTRIBUTION, GIT_ENV, SEEDS, git, skill_leaf, write

REPO = Path(__file__).resolve().parent.parent
PRE_COMMIT = Path(sys.executable).with_name("pre-commit")
ADOPTION = (REPO / "docs" / "adoption.md").read_text()

OLD = "foundational_skills/reasoning/logic/qna.yaml"
RENAMED_FROM = "compositional_skills/linguistics/old_name/qna.yaml"
RENAMED_TO = "compositional_skills/linguistics/new_name/qna.yaml"
TEMPLATES = "compositional_skills/writing/freeform/templates/qna.yaml"
# An InstructLab-era leaf: no version, no attribution, a trailing space on line 4.
OLD_LEAF = """created_by: someone
task_description: answer logic questions
seed_examples:
  - question: Is every square a rectangle?\x20
    answer: Yes, every square is a rectangle.
  - question: If all cats are animals, are all animals cats?
    answer: No, only the other way round.
"""
# Merged shape of today: version 3 and an attribution, but one seed repeats another.
TEMPLATE_SEEDS = [("List two synonyms for the word happy.", "Glad, cheerful."),
                  ("List three synonyms for the word fast.", "Quick, rapid, swift."),
                  ("List four synonyms for the word big.", "Large, huge, vast, great."),
                  ("List five synonyms for the word small.", "Little, tiny, minute, petite, wee."),
                  ("List two synonyms for the word happy.", "Glad, cheerful!")]


def block(language: str, first_line: str) -> str:
    """The docs' code block of `language` that starts with `first_line`."""
    for body in re.findall(rf"```{language}\n(.*?)```", ADOPTION, re.S):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"docs/adoption.md has no {language} block starting {first_line!r}")


def snapshot(tmp_path: Path) -> tuple[Path, str]:
    """This working tree (uncommitted and untracked files too) as a commit of a bare
    repository: what a taxonomy's `.pre-commit-config.yaml` names as repo and rev."""
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(tmp_path / "snapshot-index")}
    run = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], env=env, check=True,  # noqa: E731
                                    capture_output=True, text=True).stdout.strip()
    run("read-tree", "HEAD")
    run("add", "-A")
    sha = run("commit-tree", run("write-tree"), "-p", "HEAD", "-m", "snapshot")
    bare = tmp_path / "lab-hooks.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    run("push", "-q", str(bare), f"{sha}:refs/heads/snapshot")
    return bare, sha


def offline_env(tmp_path: Path, cache: Path) -> tuple[list[str], dict]:
    """How to run a command with networking impossible: in a network namespace of its
    own (no interface but a downed loopback) where that is allowed, else behind an
    unreachable proxy with pip's index off. A fresh HOME and an empty LAB_HOME: nothing
    fetched before can help."""
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(cache), "HOME": str(tmp_path / "home"),
           "LAB_HOME": str(tmp_path / "empty-lab-home"), "GITHUB_ACTIONS": "",
           "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}
    (tmp_path / "home").mkdir(exist_ok=True)
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"], env
    return [], {**env, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}


@pytest.fixture(scope="module")
def adopted(tmp_path_factory):
    """A taxonomy with old problems, then the hook added as docs/adoption.md says."""
    tmp = tmp_path_factory.mktemp("adoption")
    taxonomy = tmp / "taxonomy"
    taxonomy.mkdir()
    git(taxonomy, "init", "-q", "-b", "main")
    write(taxonomy, {
        OLD: OLD_LEAF,
        RENAMED_FROM: OLD_LEAF.replace("logic", "words").replace("square", "word"),
        TEMPLATES: skill_leaf("List synonyms", TEMPLATE_SEEDS),
        "compositional_skills/writing/freeform/templates/attribution.txt": ATTRIBUTION.format(title="t", slug="t"),
        "compositional_skills/writing/freeform/haiku/qna.yaml": skill_leaf("Write haiku", SEEDS),
        "compositional_skills/writing/freeform/haiku/attribution.txt": ATTRIBUTION.format(title="h", slug="h"),
    })
    git(taxonomy, "add", "-A")
    git(taxonomy, "commit", "-qm", "the taxonomy as InstructLab left it")
    bare, sha = snapshot(tmp)
    config = block("yaml", "repos:").replace("https://github.com/lab-hooks/lab-hooks", str(bare))
    config = config.replace("rev: v0.1.0", f"rev: {sha}")
    # InstructLab's verdicts, with two rules moved to strict (the guide's second .lab-hooks.yaml)
    write(taxonomy, {".pre-commit-config.yaml": config, ".lab-hooks.yaml": block("yaml", "profile: instructlab")})
    cache = tmp / "pre-commit-cache"
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(cache)}
    for args in (["install"], ["install-hooks"]):  # the one step that needs an index: installing lab-hooks
        done = subprocess.run([str(PRE_COMMIT), *args], cwd=taxonomy, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
    git(taxonomy, "add", "-A")
    git(taxonomy, "commit", "-qm", "adopt lab-hooks", "--no-verify")
    return taxonomy, tmp, cache


def commit(adopted, message: str) -> subprocess.CompletedProcess:
    """`git commit -a` with the installed hook, offline; `stdout` is all the hook printed
    (git hands a hook's output to stderr)."""
    taxonomy, tmp, cache = adopted
    prefix, env = offline_env(tmp, cache)
    git(taxonomy, "add", "-A")
    return subprocess.run([*prefix, "git", "commit", "-qm", message], cwd=taxonomy, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def hook_bin(cache: Path) -> Path:
    """lab-hooks as pre-commit installed it: a fresh environment built from the repository."""
    found = sorted(cache.glob("repo*/py_env-*/bin/lab-hooks"))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.slow
def test_contributors_are_blocked_only_by_what_they_add(adopted):
    taxonomy, tmp, cache = adopted
    # A typo fixed in a leaf full of old problems goes through.
    write(taxonomy, {OLD: OLD_LEAF.replace("other way round", "other way around")})
    done = commit(adopted, "fix a typo")
    assert done.returncode == 0, done.stdout
    # The same leaf with a seed the change adds without its answer: refused at that line.
    write(taxonomy, {OLD: OLD_LEAF + "  - question: What is two plus two?\n"})
    done = commit(adopted, "a new problem")
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if " error " in line]
    assert errors == [f"{OLD}:8:5: error LH110 seed_examples[2]: missing required key 'answer'"], done.stdout
    shown = block("text", "validate taxonomy leaves").splitlines()  # what the guide shows is what they see
    assert shown and all(line in done.stdout.splitlines() for line in shown if line.startswith(OLD)), done.stdout
    assert f"{OLD}:1:1: warning LH101 [pre-existing]" in done.stdout
    git(taxonomy, "checkout", "-q", "HEAD", "--", OLD)
    # A leaf renamed in the change keeps its old findings as pre-existing.
    git(taxonomy, "mv", os.path.dirname(RENAMED_FROM), os.path.dirname(RENAMED_TO))
    done = commit(adopted, "rename a leaf")
    assert done.returncode == 0, done.stdout
    # A new leaf is checked in full, MT-Bench contamination included, from the packaged index.
    turn = "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural " \
           "experiences and must-see attractions."
    added = "compositional_skills/writing/freeform/travel/qna.yaml"
    write(taxonomy, {added: skill_leaf("Travel", SEEDS[:4] + [(turn, "Aloha!")])})
    done = commit(adopted, "a contaminated leaf")
    assert done.returncode == 1
    found = {tuple(line.split()[1:3]) for line in done.stdout.splitlines() if line.startswith(added)}
    assert {code for severity, code in found if severity == "error"} == {"LH403"}, done.stdout
    assert ("warning", "LH606") in found  # a warning in InstructLab's profile: it checks no contamination
    assert "[pre-existing]" not in done.stdout and "LH607" not in done.stdout
    write(taxonomy, {added: None})


@pytest.mark.slow
def test_a_baseline_and_the_action_on_the_adopted_repository(adopted, tmp_path):
    taxonomy, tmp, cache = adopted
    lab_hooks = hook_bin(cache)
    prefix, env = offline_env(tmp, cache)

    def run(*argv, cwd=taxonomy, extra=None):
        return subprocess.run([*prefix, *argv], cwd=cwd, env={**env, **(extra or {})}, capture_output=True,
                              text=True, timeout=600)

    # The whole tree in full fails; recorded in a baseline, it passes; a new problem does not.
    assert run(str(lab_hooks), "validate", ".").returncode == 1
    for line in block("sh", "lab-hooks baseline").splitlines():
        argv = line.split("#")[0].split()
        if argv and argv[0] == "lab-hooks":
            done = run(str(lab_hooks), *argv[1:])
            assert done.returncode == 0 and "errors recorded" in done.stdout, done.stdout + done.stderr
    entries = json.loads((taxonomy / ".lab-hooks-baseline.json").read_text())["findings"]
    assert {e["leaf"] for e in entries} >= {OLD, TEMPLATES}
    done = run(str(lab_hooks), "validate", ".")
    assert done.returncode == 0 and "[in baseline]" in done.stdout, done.stdout + done.stderr
    git(taxonomy, "add", "-A")
    git(taxonomy, "commit", "-qm", "lab-hooks: baseline of today's errors", "--no-verify")

    # The Action's validate job on a PR: base = main's commit the PR forked from; main moved on since.
    fork = git(taxonomy, "rev-parse", "HEAD")
    git(taxonomy, "checkout", "-qb", "pr")
    write(taxonomy, {TEMPLATES: skill_leaf("List synonyms", TEMPLATE_SEEDS[:4] + [TEMPLATE_SEEDS[4]] * 2)})
    git(taxonomy, "commit", "-qam", "pr: another copy of a seed", "--no-verify")
    git(taxonomy, "checkout", "-q", "main")
    write(taxonomy, {"compositional_skills/writing/freeform/mains_own/qna.yaml": "version: 3\n"})
    git(taxonomy, "add", "-A")
    git(taxonomy, "commit", "-qm", "main moves on", "--no-verify")
    git(taxonomy, "checkout", "-q", "pr")
    action = {"LAB_MODE": "validate", "LAB_BASE": "main", "GITHUB_ACTIONS": "true",
              "PATH": f"{lab_hooks.parent}{os.pathsep}{env['PATH']}"}
    done = run("bash", str(REPO / "action" / "run.sh"), extra=action)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = {line.split("::")[1] for line in done.stdout.splitlines() if line.startswith("::error")}
    assert errors == {f"error file={TEMPLATES},line=20,col=5,title=LH115",  # the copy the PR adds
                      f"error file={TEMPLATES},line=20,col=15,title=LH610"}, done.stdout
    assert f"file={TEMPLATES},line=17,col=15,title=LH610::LH610 [in baseline]" in done.stdout
    assert "mains_own" not in done.stdout  # main's own problem is not the PR's
    assert fork == git(taxonomy, "merge-base", "main", "pr")
    # pre-commit's own range mode, as a CI job would run it: the hook's base is the range's start.
    done = run(str(PRE_COMMIT), "run", "--from-ref", "main", "--to-ref", "pr")
    assert done.returncode == 1 and f"{TEMPLATES}:20:15: error LH610" in done.stdout, done.stdout + done.stderr
