"""action/run.sh as the GPU job and the comment job run it: real git repositories, the real
lab-hooks, the local GitHub API server. A PR number is written for lab-comment only once
refs/pull/<n>/head is the validated sha; the ML process never sees a token and exits 0 on
a successful run (issue 15, items 1 and 3)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from github_server import FakeGitHub
from pr_repos import GIT_ENV, commit, git, init_repo

from lab_hooks.report.comment import MARKER

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "ghs_read_only_token_value"


@pytest.fixture
def upstream(tmp_path):
    """The taxonomy on GitHub: main, and two PRs (refs/pull/N/head) that change no leaf."""
    repo = init_repo(tmp_path / "upstream", {"README.md": "taxonomy\n"})
    base = git(repo, "rev-parse", "HEAD")
    heads = {}
    for number in (7, 8):
        git(repo, "checkout", "-q", "-b", f"pr{number}", base)
        heads[number] = commit(repo, {"README.md": f"taxonomy, PR {number}\n"})
        git(repo, "update-ref", f"refs/pull/{number}/head", heads[number])
    git(repo, "checkout", "-q", "main")
    work = tmp_path / "work"  # the runner's checkout of the default branch
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True, env={**os.environ, **GIT_ENV})
    return work, heads


def run_action(work: Path, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """action/run.sh with `lab-hooks` on PATH behind a spy that records the environment it got."""
    spy = tmp_path / "spy"
    spy.mkdir(exist_ok=True)
    (spy / "lab-hooks").write_text(f'#!/bin/sh\nenv > "{tmp_path}/lab-hooks.env"\nprintf "%s\\n" "$*" > '
                                   f'"{tmp_path}/lab-hooks.argv"\nexec "{BIN}/lab-hooks" "$@"\n')
    (spy / "lab-hooks").chmod(0o755)
    full = {**os.environ, **GIT_ENV, "PATH": f"{spy}:{os.environ['PATH']}", "ACTION_PATH": str(ROOT),
            "LAB_HOME_INPUT": str(tmp_path / "home"), "LAB_BASE": "origin/main", "LAB_HEAD": "", "LAB_PR": "",
            "LAB_TEACHER": "embedded:smollm2-135m-instruct", "LAB_STUDENT": "embedded:smollm2-135m-instruct",
            "LAB_JUDGE": "embedded:smollm2-135m-instruct", "LAB_QUICK": "0",
            "LAB_RESULTS": str(tmp_path / "out" / "results.json"), "LAB_TOKEN": TOKEN, "GITHUB_TOKEN": TOKEN, **env}
    return subprocess.run(["bash", str(ROOT / "action" / "run.sh")], cwd=work, env=full, capture_output=True,
                          text=True, timeout=300)


def test_pr_mode_verifies_the_number_runs_tokenless_and_exits_0(upstream, tmp_path):
    work, heads = upstream
    result = run_action(work, tmp_path, LAB_MODE="pr", LAB_PR="7", LAB_HEAD=heads[7])
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert (out / "number").read_text() == "7\n" and (out / "head_sha").read_text() == heads[7] + "\n"
    run = json.loads((out / "results.json").read_text())
    assert run["status"] == "ok" and run["pr"] == 7 and run["head"]["sha"] == heads[7]
    seen = (tmp_path / "lab-hooks.env").read_text()
    assert TOKEN not in seen and "GITHUB_TOKEN=" not in seen and "LAB_TOKEN=" not in seen


@pytest.mark.parametrize("mode", ["pr", "promote"])
def test_the_gpus_input_sets_how_many_processes_train(upstream, tmp_path, mode):
    work, heads = upstream
    result = run_action(work, tmp_path, LAB_MODE=mode, LAB_HEAD=heads[7], LAB_GPUS="4")
    assert " --nproc 4" in (tmp_path / "lab-hooks.argv").read_text()
    assert result.returncode == 0 if mode == "pr" else "nothing to promote" in result.stderr, result.stderr


@pytest.mark.parametrize("number", ["8", "9"])  # another PR's head; no such PR
def test_pr_mode_rejects_a_forged_number_and_writes_none(upstream, tmp_path, number):
    work, heads = upstream
    result = run_action(work, tmp_path, LAB_MODE="pr", LAB_PR=number, LAB_HEAD=heads[7])
    assert result.returncode != 0
    assert not (tmp_path / "out" / "number").exists() and not (tmp_path / "out" / "head_sha").exists()
    assert not (tmp_path / "lab-hooks.env").exists()  # nothing ran


def test_the_token_is_not_on_any_command_line(upstream, tmp_path):
    """fetch-pr.sh hands git the token through its environment: `ps` shows every user the argv."""
    work, heads = upstream
    spy = tmp_path / "spy"
    spy.mkdir()
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    (spy / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{tmp_path}/git.argv"\nexec "{real_git}" "$@"\n')
    (spy / "git").chmod(0o755)
    result = run_action(work, tmp_path, LAB_MODE="pr", LAB_PR="7", LAB_HEAD=heads[7])
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "git.argv").read_text()
    assert "fetch --no-tags" in argv
    secret = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert TOKEN not in argv and secret not in argv


def test_comment_mode_posts_only_for_the_verified_head(upstream, tmp_path):
    work, heads = upstream
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"status": "ok", "pr": 7, "head": {"ref": "pr7", "sha": heads[7]}}))
    with FakeGitHub(token=TOKEN) as server:
        env = {"LAB_MODE": "comment", "LAB_PR": "7", "LAB_RESULTS": str(results), "GITHUB_REPOSITORY": server.repo,
               "GITHUB_API_URL": server.url, "LAB_ARTIFACTS_URL": "https://github.com/acme/taxonomy/actions/runs/3"}
        server.pulls = {7: {"head": {"sha": heads[8]}}}  # the PR moved on: a newer run will report
        moved = run_action(work, tmp_path, LAB_HEAD=heads[7], **env)
        assert moved.returncode == 0 and "not posted" in moved.stderr and not server.comments
        server.pulls = {7: {"head": {"sha": heads[7]}}}
        posted = run_action(work, tmp_path, LAB_HEAD=heads[7], **env)
        assert posted.returncode == 0, posted.stderr
        [comment] = server.comments[7]
        assert comment["body"].startswith(MARKER) and "(https://github.com/acme/taxonomy/actions/runs/3)" in comment["body"]


# -- the GPU runner's install (issue 15, item 6) --------------------------------------------------------

NVIDIA_SMI = {"gpu": 'echo "GPU 0: NVIDIA H200 (UUID: GPU-0f0e)"', "no driver":
              'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver." >&2; exit 9',
              "no gpu": 'echo "No devices were found"; exit 6'}


def setup_plan(tmp_path: Path, mode: str, nvidia_smi: str | None, **env) -> subprocess.CompletedProcess:
    """action/setup.sh's pip commands for this runner (LAB_SETUP_PLAN=1 prints, installs nothing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if nvidia_smi:
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{NVIDIA_SMI[nvidia_smi]}\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    if not (bin_dir / "python3").exists():
        (bin_dir / "python3").symlink_to(sys.executable)  # a Python the CUDA set is locked for
    full = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ACTION_PATH": str(ROOT), "LAB_MODE": mode, "LAB_SETUP_PLAN": "1",
            "RUNNER_TEMP": str(tmp_path), **env}
    return subprocess.run(["bash", str(ROOT / "action" / "setup.sh")], env=full, capture_output=True, text=True)


@pytest.mark.parametrize("mode, nvidia_smi, env, cuda", [
    ("pr", "gpu", {}, True), ("promote", "gpu", {}, True),
    ("pr", "no driver", {}, False), ("pr", "no gpu", {}, False), ("pr", None, {}, False),
    ("validate", "gpu", {}, False), ("comment", "gpu", {}, False),  # no ML: the small core set
    ("pr", None, {"LAB_ACCELERATOR": "cuda"}, True), ("pr", "gpu", {"LAB_ACCELERATOR": "cpu"}, False),
])
def test_setup_picks_the_package_set_by_the_runner_s_hardware(tmp_path, mode, nvidia_smi, env, cuda):
    result = setup_plan(tmp_path, mode, nvidia_smi, **env)
    assert result.returncode == 0, result.stderr
    commands = result.stdout.strip().splitlines()
    assert all("--only-binary :all:" in c for c in commands)  # no package's build code runs on the runner
    if cuda:
        assert commands[0].endswith("--require-hashes --no-deps -r " + str(ROOT / "action" / "requirements-cuda.txt"))
        assert commands[1].endswith(f"--no-deps --no-build-isolation {ROOT}")
    else:
        extras = "[ml,postgres]" if mode in ("pr", "promote") else ""
        assert commands == [c for c in commands if "requirements-cuda" not in c]
        assert commands[-1].endswith(f"-c {ROOT}/constraints.txt {ROOT}{extras}")
        # torch==2.13.0+cpu is on PyTorch's CPU index only; the core set needs no torch
        assert ("--extra-index-url https://download.pytorch.org/whl/cpu" in commands[-1]) == bool(extras)


def test_setup_refuses_an_unknown_accelerator(tmp_path):
    result = setup_plan(tmp_path, "pr", None, LAB_ACCELERATOR="rocm")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "auto, cpu or cuda" in result.stderr


def test_the_cuda_set_is_locked_with_hashes_and_holds_what_the_ml_modes_import():
    """Every package pinned with its sha256; torch is PyPI's CUDA build (no `+cpu`), vLLM's CUDA build
    is there with its NVIDIA libraries, and so is everything lab-hooks[ml,postgres] needs."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    text = (ROOT / "action" / "requirements-cuda.txt").read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        spec, *hashes = line.split(" --hash=")
        req = Requirement(spec.strip())
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", line
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h.strip()) for h in hashes), line
        pins.setdefault(canonicalize_name(req.name), set()).add(next(iter(req.specifier)).version)
    assert pins["torch"] == {"2.13.0"} and pins["vllm"] == {"0.32.0"} and "hatchling" in pins
    assert any(name.startswith("nvidia-") for name in pins)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["ml"] + project["optional-dependencies"]["postgres"]:
        req = Requirement(dep)
        assert canonicalize_name(req.name) in pins, dep
        assert all(req.specifier.contains(v) for v in pins[canonicalize_name(req.name)]), (dep, pins[canonicalize_name(req.name)])
