"""Benchmark: `lab-hooks validate` against InstructLab's own validator on the
real-world corpus, in the same run.

1. Whole corpus: every qna.yaml of ../shared/corpus, validated by
   `lab-hooks validate` (one command, all files) and by instructlab-schema
   0.4.2 + yamllint in own-version mode (`TaxonomyParser(schema_version=0)`
   plus the taxonomy CI's attribution check, one process), in its own venv with
   only that venv's bin on PATH, as the corpus README prescribes. Three rounds,
   the tools taking turns; prints every run, the medians and their ratio
   (target >= 20x).
2. One file: the median wall time of 20 runs of `lab-hooks validate FILE`,
   interpreter start included (target <= 150 ms); then the same as the pre-commit
   hook runs it, `--base HEAD` on a leaf edited in a git repository of the
   sample taxonomy (the ratchet: one `git cat-file` process and the base's
   version of the leaf checked too), in the same rounds, alternating.

    python bench/validate.py            # creates .venv-anchor on first use
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus" / "instructlab-taxonomy-history"
ANCHOR_VENV = REPO / ".venv-anchor"
ANCHOR_PINS = ["instructlab-schema==0.4.2", "yamllint==1.38.0"]

# Runs inside the anchor venv: InstructLab's validator over every file, one process.
ANCHOR_SCRIPT = r"""
import json, sys, pathlib, contextlib, io
from instructlab.schema.taxonomy import TaxonomyParser
files = json.load(sys.stdin)
parser = TaxonomyParser(schema_version=0, message_format="standard")
rejected = 0
for name in files:
    path = pathlib.Path(name)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            taxonomy = parser.parse(path)
        except Exception:  # its crash on invalid YAML; the CI script stops here, we go on
            rejected += 1
            continue
    errors = taxonomy.errors
    if taxonomy.version > 1:  # the taxonomy CI's attribution check
        attribution = path.parent / "attribution.txt"
        if not attribution.is_file() or not attribution.read_text(errors="replace").strip():
            errors += 1
    rejected += errors > 0
print(rejected)
"""


def ensure_anchor_venv() -> Path:
    python = ANCHOR_VENV / "bin" / "python"
    marker = ANCHOR_VENV / ".installed"
    if not marker.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(ANCHOR_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PINS], check=True)
        marker.write_text(" ".join(ANCHOR_PINS))
    return python


def corpus_files() -> list[str]:
    rows = [json.loads(line) for line in open(CORPUS / "anchor_verdicts.jsonl")]
    return [str(CORPUS / r["tree"] / r["path"]) for r in rows]


LAB_HOOKS = str(REPO / ".venv" / "bin" / "lab-hooks")
ROUNDS = 3
# As installed for users: bytecode cached (pip compiles it; a warm-up run writes it here).
OUR_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(files: list[str]) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run([LAB_HOOKS, "validate", "--format", "json", "--root", str(CORPUS), *files],
                          capture_output=True, text=True, env=OUR_ENV)
    elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode not in (0, 1):
        sys.exit(f"lab-hooks validate failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    rejected = sum(any(f["severity"] == "error" for f in entry["findings"]) for entry in report["files"])
    return elapsed, cpu, rejected


def run_anchor(python: Path, files: list[str]) -> tuple[float, float, int]:
    env = {"PATH": str(python.parent), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    with tempfile.TemporaryDirectory() as cwd:
        start, cpu = time.perf_counter(), children_cpu()
        proc = subprocess.run([str(python), "-c", ANCHOR_SCRIPT], input=json.dumps(files),
                              capture_output=True, text=True, env=env, cwd=cwd)
        elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode:
        sys.exit(f"InstructLab validator failed: {proc.stderr[-2000:]}")
    return elapsed, cpu, int(proc.stdout.strip().splitlines()[-1])


def one_file_medians(commands: dict[str, list[str]], cwd: dict[str, str], runs: int = 20) -> dict:
    """Median wall and CPU seconds of each command, interpreter start included; the
    commands take turns, so a busy spell of the machine hits each of them."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            start, cpu = time.perf_counter(), children_cpu()
            proc = subprocess.run(cmd, capture_output=True, env=OUR_ENV, cwd=cwd[name])
            walls[name].append(time.perf_counter() - start)
            cpus[name].append(children_cpu() - cpu)
            if proc.returncode not in (0, 1):
                sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in commands}


def edited_repository(tmp: str) -> tuple[str, str]:
    """The sample taxonomy committed to a new git repository, one leaf then edited (a
    word of one answer): what a pre-commit run sees. Returns the repository and the leaf."""
    repo = os.path.join(tmp, "taxonomy")
    subprocess.run(["cp", "-r", str(REPO / "taxonomy"), repo], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "sample"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    leaf = "compositional_skills/writing/freeform/haiku/qna.yaml"
    path = Path(repo, leaf)
    path.write_text(path.read_text().replace("the whole sky glows blue.", "the whole sky shines blue."))
    return repo, leaf


def main() -> int:
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    python = ensure_anchor_venv()
    files = corpus_files()
    run_ours(files)  # warm-up: bytecode and the corpus root's seed index
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    print(f"commit {commit.stdout.strip()}; machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"corpus: {len(files)} files, {ROUNDS} rounds   wall      CPU (user+sys, with subprocesses)")
    ours, theirs = [], []
    for n in range(1, ROUNDS + 1):  # interleaved: a busy spell of the machine hits both tools
        ours.append(run_ours(files))
        theirs.append(run_anchor(python, files))
        for name, (wall, cpu, rejected) in (("lab-hooks validate", ours[-1]), ("InstructLab (schema 0.4.2)", theirs[-1])):
            print(f"  {n}: {name + ':':27} {wall:7.2f} s  {cpu:7.2f} s  ({rejected} rejected)")
    (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = (
        [statistics.median(run[i] for run in runs) for i in (0, 1)] for runs in (ours, theirs))
    print(f"  median: lab-hooks {ours_wall:.2f} s wall, {ours_cpu:.2f} s CPU; "
          f"InstructLab {theirs_wall:.2f} s wall, {theirs_cpu:.2f} s CPU")
    print(f"  speed-up: {theirs_wall / ours_wall:.1f}x wall, {theirs_cpu / ours_cpu:.1f}x CPU  (target >= 20x)")
    sample = str(REPO / "taxonomy" / "compositional_skills" / "writing" / "freeform" / "haiku" / "qna.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        repo, leaf = edited_repository(tmp)
        medians = one_file_medians({"plain": [LAB_HOOKS, "validate", sample],
                                    "hook": [LAB_HOOKS, "validate", "--base", "HEAD", leaf]},
                                   {"plain": str(REPO), "hook": repo})
    for name, what in (("plain", "lab-hooks validate FILE"), ("hook", "the hook: --base HEAD, an edited leaf")):
        wall, cpu = medians[name]
        print(f"one file ({what}), median of 20 runs incl. interpreter start: {wall * 1000:.0f} ms wall, "
              f"{cpu * 1000:.0f} ms CPU  (target <= 150 ms)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
