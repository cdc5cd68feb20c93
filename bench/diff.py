"""Change detection on a large taxonomy: lab-hooks vs InstructLab's get_taxonomy_diff.

Generates (with `git fast-import`) a repository of 5,000 leaves and 10,000
commits: main edits one leaf per commit; branch `pr` forks 5 commits before
main's tip and changes 3 leaves in 3 commits; branch `pr-long` changes the same
3 leaves over 97 commits. Then times, in the same run:

- lab-hooks `diff_taxonomy(repo, "main", head)` in process, and the CLI
  `lab-hooks diff --base main --head pr` with interpreter start;
- lab-hooks against the working tree (HEAD = the PR checked out), the same
  input InstructLab's function reads;
- InstructLab's algorithm, `_get_taxonomy_diff` from instructlab-sdg 0.8.3
  (src/instructlab/sdg/utils/taxonomy.py, Apache-2.0), copied below
  unchanged except for imports: it walks first parents from HEAD, one
  `git branch -a --contains` per commit, until a commit on base, then diffs
  that commit against the working tree.

Usage: nice python bench/diff.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git
import gitdb

from lab_hooks.diff import diff_taxonomy

LEAVES = 5_000
COMMITS = 10_000
PR_FORK_BEHIND = 5  # main commits after the PR forked
LONG_PR_COMMITS = 97

# -- InstructLab's algorithm, verbatim (instructlab-sdg 0.8.3) --------------------------

TAXONOMY_FOLDERS = ["compositional_skills", "knowledge"]  # instructlab-schema 0.4.2 DEFAULT_TAXONOMY_FOLDERS


def _is_taxonomy_file(fn: str) -> bool:
    path = Path(fn)
    if path.parts[0] not in TAXONOMY_FOLDERS:
        return False
    if path.name == "qna.yaml":
        return True
    return False  # (the original logs a warning for qna.yml here)


def _get_taxonomy_diff(repo_path="taxonomy", base="origin/main"):
    repo = git.Repo(repo_path)
    untracked_files = [u for u in repo.untracked_files if _is_taxonomy_file(u)]

    branches = [b.name for b in repo.branches]

    head_commit = None
    if "/" in base:
        re_git_branch = re.compile(f"remotes/{base}$", re.MULTILINE)
    elif base in branches:
        re_git_branch = re.compile(f"{base}$", re.MULTILINE)
    else:
        try:
            head_commit = repo.commit(base)
        except gitdb.exc.BadName as e:
            raise SystemExit(f'Couldn\'t find the taxonomy git ref "{base}" from the current HEAD') from e

    # Move backwards from HEAD until we find the first commit that is part of base
    # then we can take our diff from there
    current_commit = repo.commit("HEAD")
    while not head_commit:
        branches = repo.git.branch("-a", "--contains", current_commit.hexsha)
        if re_git_branch.findall(branches):
            head_commit = current_commit
            break
        try:
            current_commit = current_commit.parents[0]
        except IndexError as e:
            raise SystemExit(f'Couldn\'t find the taxonomy base branch "{base}" from the current HEAD') from e

    modified_files = [
        d.b_path
        for d in head_commit.diff(None)
        if not d.deleted_file and _is_taxonomy_file(d.b_path)
    ]

    updated_taxonomy_files = list(set(untracked_files + modified_files))
    return updated_taxonomy_files

# -- the generated repository -----------------------------------------------------------


def leaf_path(i: int) -> str:
    top = "knowledge" if i % 10 == 0 else "compositional_skills"
    return f"{top}/area{i // 100:02d}/topic{i // 10 % 10}/leaf{i:04d}/qna.yaml"


def leaf_text(i: int, rev: int) -> bytes:
    seeds = "".join(f"  - question: Question {k} of leaf {i}, revision {rev}?\n"
                    f"    answer: The answer {k} for leaf {i}.\n" for k in range(5))
    return f"version: 3\ncreated_by: bench\ntask_description: leaf {i} rev {rev}\nseed_examples:\n{seeds}".encode()


def generate(repo: Path) -> None:
    """5,000 leaves, 10,000 commits, branches main, pr and pr-long, via one fast-import."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    main_commits = COMMITS - 3 - LONG_PR_COMMITS
    fork_at = main_commits - PR_FORK_BEHIND
    pr_leaves = [17, 2_500, LEAVES]  # two edits and one new leaf
    chunks: list[bytes] = []
    clock = 1_700_000_000

    def commit(ref: str, mark: int, parent: int | None, files: dict[str, bytes]) -> None:
        nonlocal clock
        clock += 60
        msg = f"commit {mark}".encode()
        chunks.append(f"commit {ref}\nmark :{mark}\ncommitter bench <b@b> {clock} +0000\n"
                      f"data {len(msg)}\n".encode() + msg + b"\n")
        if parent:
            chunks.append(f"from :{parent}\n".encode())
        for path, data in files.items():
            chunks.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        chunks.append(b"\n")

    commit("refs/heads/main", 1, None, {leaf_path(i): leaf_text(i, 0) for i in range(LEAVES)})
    for n in range(2, main_commits + 1):
        i = (n * 7919) % LEAVES
        commit("refs/heads/main", n, n - 1, {leaf_path(i): leaf_text(i, n)})
    mark = main_commits
    for k, i in enumerate(pr_leaves):
        mark += 1
        commit("refs/heads/pr", mark, fork_at if k == 0 else mark - 1, {leaf_path(i): leaf_text(i, -1)})
    for k in range(LONG_PR_COMMITS):
        mark += 1
        i = pr_leaves[k % 3]
        commit("refs/heads/pr-long", mark, fork_at if k == 0 else mark - 1, {leaf_path(i): leaf_text(i, -2 - k)})
    assert mark == COMMITS
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(chunks), check=True)


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="generate the repository here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.keep or Path(tmp) / "taxonomy"
        t = time.perf_counter()
        if not (repo / ".git").exists():
            generate(repo)
        print(f"repository: {LEAVES:,} leaves, "
              f"{int(subprocess.check_output(['git', '-C', str(repo), 'rev-list', '--all', '--count'])):,} commits, "
              f"generated in {time.perf_counter() - t:.1f} s")
        rows = []
        for head in ("pr", "pr-long"):
            ours, changes = timed(lambda: diff_taxonomy(repo, "main", head).leaves, 5)
            cli, _ = timed(lambda: subprocess.run(
                [sys.executable, "-m", "lab_hooks", "diff", "--repo", str(repo), "--base", "main", "--head", head],
                check=True, capture_output=True), 3)
            subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-f", head], check=True)
            subprocess.run(["git", "-C", str(repo), "status", "-s"], check=True)  # refresh the index for both
            worktree, wt_changes = timed(lambda: diff_taxonomy(repo, "main").leaves, 3)
            theirs, their_files = timed(lambda: _get_taxonomy_diff(repo, "main"), 3)
            ours_set = sorted(c.path for c in changes)
            assert ours_set == sorted(c.path for c in wt_changes) == sorted(their_files), (ours_set, their_files)
            rows.append((head, len(ours_set), ours, cli, worktree, theirs))
        print(f"{'head':<8} {'leaves':>6} {'lab-hooks':>10} {'CLI':>8} {'worktree':>9} {'InstructLab':>12} {'ratio':>6}")
        for head, n, ours, cli, worktree, theirs in rows:
            print(f"{head:<8} {n:>6} {ours:>9.3f}s {cli:>7.3f}s {worktree:>8.3f}s {theirs:>11.3f}s {theirs / ours:>5.0f}x")
        print("lab-hooks: in-process diff_taxonomy --head (median of 5); CLI: `lab-hooks diff --head` with "
              "interpreter start (median of 3); worktree: lab-hooks without --head on the checked-out PR; "
              "InstructLab: _get_taxonomy_diff on the same checkout (median of 3); ratio: InstructLab / lab-hooks")


if __name__ == "__main__":
    main()
