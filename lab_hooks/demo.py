"""`make demo`: the whole PR loop on this machine, with the embedded model.

0. The pre-commit stage: the sample taxonomy validates clean, and a deliberately
   broken copy of one of its leaves gets one line per problem at file:line:col.
1. Builds a temporary taxonomy git repository from `taxonomy/` (main).
2. Opens a "pull request": a branch adding one new skill leaf (limericks).
3. Runs `lab-hooks pr --dry-run` on it end to end: diff → validate → generate
   → train (phase 2, replay from main's buffer when it has one) → MT-Bench
   quick + branch eval → the comment, which is printed and written to
   `demo-out/comment.md` (with `demo-out/results.json` beside it).
Settings are tiny so it finishes in minutes on 2 CPU cores; everything lands in
the store (LAB_HOME), so a second run is served from it in seconds. The
embedded 135M model is teacher, student and judge: a smoke test of the
machinery, not a measurement of anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab_hooks import pr as pr_loop
from lab_hooks.checks.validate import main as validate

REPO_ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = REPO_ROOT / "taxonomy"
LEAF = Path("compositional_skills/writing/freeform/haiku")
PR_LEAF = Path(__file__).with_name("demo_pr")
GIT_ENV = {"GIT_AUTHOR_NAME": "lab-hooks demo", "GIT_AUTHOR_EMAIL": "demo@lab-hooks.invalid",
           "GIT_COMMITTER_NAME": "lab-hooks demo", "GIT_COMMITTER_EMAIL": "demo@lab-hooks.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           # fixed dates: the same commits every run, so a rerun prints the same comment
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
# Small enough for 2 CPU cores; the numbers in the comment are a smoke test. Answers dominate
# the time (MT-Bench's 16 turns plus the branch eval's questions, for base and candidate):
# 32 tokens each, one unchanged control leaf. The embedded judge's answer is prefilled up
# to its rating, so 8 tokens hold "7]]".
DEMO_ARGS = ["--quick", "1", "--samples-per-seed", "2", "--max-steps", "4", "--judge-max-tokens", "8",
             "--answer-max-tokens", "32", "--unchanged-leaves", "1", "--sdg-max-tokens", "96"]


def break_leaf(text: str) -> str:
    """A contributor's typical mistakes: trailing spaces, a repeated key, a
    number where text belongs, a context in a freeform skill, too few seeds."""
    text = text.replace("version: 3\n", "version: 3   \n", 1)
    text = text.replace("created_by: lab-hooks\n", "created_by: lab-hooks\ncreated_by: me\n", 1)
    text = text.replace("  - question: Write a haiku about plate tectonics.",
                        "  - question: Write a haiku about plate tectonics.\n    context: Continents move.", 1)
    text = text.replace("      gold honey remains.\n", "      gold honey remains.\n  - question: How many?\n    answer: 42\n", 1)
    seeds = text.split("  - question:")
    return "  - question:".join(seeds[:5]).rstrip("\n")  # 4 seeds left, and no final newline


def section(title: str, argv: list[str], cwd: Path) -> int:
    print(f"\n$ lab-hooks validate {' '.join(argv)}    # {title}", flush=True)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        code = validate(argv)
    finally:
        os.chdir(here)
    print(f"(exit {code})", flush=True)
    return code


def precommit_stage(taxonomy: Path) -> bool:
    """What a contributor sees at commit time; True when both results are as expected."""
    print("lab-hooks demo: validating taxonomy leaves as the pre-commit hook does")
    clean = section("the sample taxonomy", [taxonomy.name], taxonomy.parent)
    with tempfile.TemporaryDirectory(prefix="lab-hooks-demo-") as tmp:
        broken = Path(tmp) / LEAF
        shutil.copytree(taxonomy / LEAF, broken)
        leaf = broken / "qna.yaml"
        leaf.write_text(break_leaf(leaf.read_text()))
        failed = section("a broken copy of one leaf", [str(LEAF / "qna.yaml")], Path(tmp))
    return clean == 0 and failed == 1


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def build_repo(taxonomy: Path, dest: Path) -> Path:
    """main = the sample taxonomy; branch `pr/limericks` adds one skill leaf."""
    shutil.copytree(taxonomy, dest, symlinks=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "sample taxonomy")
    git(dest, "checkout", "-qb", "pr/limericks")
    shutil.copytree(PR_LEAF, dest, dirs_exist_ok=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "Add a limericks skill")
    git(dest, "checkout", "-q", "main")
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab_hooks.demo", description=__doc__.splitlines()[0])
    p.add_argument("--taxonomy", default=str(TAXONOMY), help="the taxonomy to start main from")
    p.add_argument("--out", default="demo-out", help="where comment.md and results.json go")
    args, extra = p.parse_known_args(argv)
    taxonomy = Path(args.taxonomy)
    if not taxonomy.is_dir():
        print(f"demo: {taxonomy}: no sample taxonomy there", file=sys.stderr)
        return 2
    start = time.perf_counter()
    if not precommit_stage(taxonomy):
        print("demo: the validator did not behave as expected", file=sys.stderr)
        return 1
    print("\nlab-hooks demo: a pull request adding one skill leaf, through the whole PR loop", flush=True)
    with tempfile.TemporaryDirectory(prefix="lab-hooks-demo-") as tmp:
        repo = build_repo(taxonomy, Path(tmp) / "taxonomy")
        print(f"demo: taxonomy repo at {repo} (main + branch pr/limericks adding one skill leaf)", file=sys.stderr)
        rc = pr_loop.main(["--repo", str(repo), "--base", "main", "--head", "pr/limericks", "--dry-run",
                           "--out", args.out, *DEMO_ARGS, *extra])
    print(f"demo: {time.perf_counter() - start:.0f} s; the comment is in {Path(args.out) / 'comment.md'}",
          file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
