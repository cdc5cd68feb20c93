"""`make demo`: the whole PR loop on this machine, with the embedded model.

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

REPO_ROOT = Path(__file__).resolve().parents[1]
PR_LEAF = Path(__file__).with_name("demo_pr")
GIT_ENV = {"GIT_AUTHOR_NAME": "lab-hooks demo", "GIT_AUTHOR_EMAIL": "demo@lab-hooks.invalid",
           "GIT_COMMITTER_NAME": "lab-hooks demo", "GIT_COMMITTER_EMAIL": "demo@lab-hooks.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
# Small enough for 2 CPU cores; the numbers in the comment are a smoke test.
DEMO_ARGS = ["--quick", "1", "--samples-per-seed", "1", "--max-steps", "4", "--judge-max-tokens", "64",
             "--answer-max-tokens", "64", "--sdg-max-tokens", "96"]


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
    p.add_argument("--taxonomy", default=str(REPO_ROOT / "taxonomy"), help="the taxonomy to start main from")
    p.add_argument("--out", default="demo-out", help="where comment.md and results.json go")
    args, extra = p.parse_known_args(argv)
    taxonomy = Path(args.taxonomy)
    if not taxonomy.is_dir():
        print(f"demo: {taxonomy}: no sample taxonomy there", file=sys.stderr)
        return 2
    start = time.perf_counter()
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
