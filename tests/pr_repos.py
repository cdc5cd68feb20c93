"""Real taxonomy git repositories in temp dirs for the PR-loop tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}

ATTRIBUTION = ("Title of work: {title}\nLink to work: https://example.org/{slug}\n"
               "License of the work: CC-BY-4.0\nCreator names: The lab-hooks authors\n")

SEEDS = [
    ("Write a haiku about the first frost on a garden.", "Silver on the leaves\nthe garden holds its breath now\nfrost writes in silence"),
    ("Compose a haiku describing a lighthouse at night.", "One beam sweeps the dark\nsailors count the turning light\nrocks stay where they are"),
    ("Give me a haiku on the smell of rain in summer.", "Dust lifts, then settles\nwarm stones drink the sudden rain\npetrichor rising"),
    ("Can you write a haiku about an old cat sleeping?", "Curled in a sunbeam\nthe old cat dreams of sparrows\nwhiskers barely twitch"),
    ("Produce a haiku about commuters on a crowded train.", "Shoulders press and sway\nstrangers share the morning news\nstations blur to grey"),
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def skill_leaf(task: str, seeds=SEEDS, created_by: str = "tester") -> str:
    body = "".join(f"  - question: {q!r}\n    answer: |\n" + "".join(f"      {line}\n" for line in a.splitlines())
                   for q, a in seeds)
    return f"version: 3\ncreated_by: {created_by}\ntask_description: {task!r}\nseed_examples:\n{body}"


def write(repo: Path, files: dict[str, str | None]) -> None:
    for path, text in files.items():
        full = repo / path
        if text is None:
            full.unlink()
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(text)


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def leaf_files(directory: str, task: str, seeds=SEEDS) -> dict[str, str]:
    slug = directory.replace("/", "-")
    return {f"{directory}/qna.yaml": skill_leaf(task, seeds),
            f"{directory}/attribution.txt": ATTRIBUTION.format(title=task, slug=slug)}


def init_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, files, "base taxonomy")
    return path
