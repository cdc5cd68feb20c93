"""`make demo`: the whole PR loop on this machine, with the embedded model.

0. The pre-commit stage: the sample taxonomy validates clean, and a deliberately
   broken copy of one of its leaves gets one line per problem at file:line:col.
1. Builds a temporary taxonomy git repository from `taxonomy/` (main).
2. Promotes main (`lab-hooks promote --ref main`, what the runner does after every
   merge): every leaf of the sample taxonomy generated, main's checkpoint trained, and
   main's replay buffer holding their data — the state a PR starts from.
3. Opens a "pull request": a branch adding one new skill leaf (limericks whose lines
   carry their rhyme label, "A:" / "B:", a format the base model does not know).
4. Runs `lab-hooks pr --dry-run` on it end to end: diff → validate → generate (the
   leaf's held-out seeds kept out) → train (phase 2 with replay from main's buffer) →
   evaluate (the judge-free reference NLL of the PR's leaf and three control leaves,
   the judge's calibration, MT-Bench quick) → the comment, printed and written to
   `demo-out/comment.md` (with `demo-out/results.json` beside it).
Settings are small so it finishes in minutes on 2 CPU cores; everything lands in
the demo's own store (LAB_HOME/demo-store: its promotion never moves a real main's
refs, whatever LAB_STORE_URL says), so a second run is served from it in seconds. The embedded
135M model is teacher, student and judge: it fails the judge calibration (so its
MT-Bench scores are labelled as not measuring quality), while the reference NLL,
which needs no judge, measures what the PR taught.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab_hooks import pr as pr_cli
from lab_hooks import promote as promote_cli
from lab_hooks.checks.validate import main as validate
from lab_hooks.flags import Parser, alias

REPO_ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = REPO_ROOT / "taxonomy"
LEAF = Path("compositional_skills/writing/freeform/haiku")
PR_LEAF = Path(__file__).with_name("demo_pr")
PR_BRANCH = "pr/limericks"
GIT_ENV = {"GIT_AUTHOR_NAME": "lab-hooks demo", "GIT_AUTHOR_EMAIL": "demo@lab-hooks.invalid",
           "GIT_COMMITTER_NAME": "lab-hooks demo", "GIT_COMMITTER_EMAIL": "demo@lab-hooks.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           # fixed dates: the same commits every run, so a rerun prints the same comment
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
# Small enough for 2 CPU cores. Training: main's promotion only needs a checkpoint and a
# replay buffer, so it trains two steps per phase at 1e-4. The PR trains four steps at 2e-5:
# enough for the limericks' rhyme labels (Δ beyond controls -0.30 nats/token), while at 1e-4
# the model also wrote "A:" labels into its haiku (+0.35 beyond controls) and at 5e-5 still
# some (+0.10) (docs/eval-results.md, *Planted effects*). The evaluation: MT-Bench's 8
# categories once (32-token answers), the embedded judge's answer prefilled up to its rating
# (8 tokens hold "7]]"), three control leaves, a small calibration set; the judged branch eval
# is left out (the embedded judge fails calibration; the reference NLL measures the leaves).
PROMOTE_ARGS = ["--samples-per-seed", "1", "--sdg-max-tokens", "64", "--max-steps", "2", "--learning-rate", "1e-4",
                "--warmup-steps", "1"]
DEMO_ARGS = ["--quick", "1", "--samples-per-seed", "2", "--sdg-max-tokens", "96", "--max-steps", "4",
             "--learning-rate", "2e-5", "--warmup-steps", "1",
             "--judge-max-tokens", "8", "--answer-max-tokens", "32", "--unchanged-leaves", "3",
             "--calibration-questions", "6", "--no-branch-judge"]


def store_url() -> str:
    """The demo's store: beside the pinned assets and models it uses, never the runner's store."""
    from lab_hooks.home import lab_home

    return f"sqlite://{(lab_home() / 'demo-store').resolve()}"


def promote_options():
    """The loop options `lab-hooks promote` gets in the demo (for benchmarks and tests)."""
    return promote_cli.options(promote_cli.build_parser().parse_args(["--no-progress", *PROMOTE_ARGS]))


def pr_options(**over):
    """The loop options `lab-hooks pr` gets in the demo, with `over` replaced."""
    args = pr_cli.build_parser().parse_args(["--base", "main", "--head", PR_BRANCH, *DEMO_ARGS])
    return dataclasses.replace(pr_cli.options(args), **over)


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
    git(dest, "checkout", "-qb", PR_BRANCH)
    shutil.copytree(PR_LEAF, dest, dirs_exist_ok=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "Add a limericks skill")
    git(dest, "checkout", "-q", "main")
    return dest


def command(name: str, argv: list[str]) -> None:
    print(f"\n$ lab-hooks {name} {' '.join(argv)}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The demo's own flags (lab_hooks.flags' convention); any others go to `lab-hooks pr`."""
    p = Parser(prog="python -m lab_hooks.demo", description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(TAXONOMY), metavar="DIR",
                   help=f"the taxonomy's folder to start main from (default {TAXONOMY.relative_to(REPO_ROOT)})")
    alias(p, "--taxonomy", "root")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="where comment.md and results.json go")
    return p


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    taxonomy = Path(args.root)
    if not taxonomy.is_dir():
        print(f"demo: {taxonomy}: no sample taxonomy there", file=sys.stderr)
        return 2
    start = time.perf_counter()
    os.environ["LAB_STORE_URL"] = store_url()
    if not precommit_stage(taxonomy):
        print("demo: the validator did not behave as expected", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="lab-hooks-demo-") as tmp:
        repo = build_repo(taxonomy, Path(tmp) / "taxonomy")
        print(f"\nlab-hooks demo: taxonomy repo at {repo}: main holds the sample taxonomy, branch {PR_BRANCH} "
              "adds one skill leaf", flush=True)
        print("lab-hooks demo: main's model and replay buffer, as promotion leaves them after a merge", flush=True)
        promote_argv = ["--repo", str(repo), "--base", "main", *PROMOTE_ARGS]
        command("promote", promote_argv)
        rc = promote_cli.main(promote_argv)
        if rc == 0:
            print("\nlab-hooks demo: the pull request through the whole PR loop", flush=True)
            pr_argv = ["--repo", str(repo), "--base", "main", "--head", PR_BRANCH, "--dry-run", "--out", args.out,
                       *DEMO_ARGS, *extra]
            command("pr", pr_argv)
            rc = pr_cli.main(pr_argv)
    print(f"demo: {time.perf_counter() - start:.0f} s; the comment is in {Path(args.out) / 'comment.md'}",
          file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
