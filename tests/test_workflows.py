"""The Action and the example workflows: linted by actionlint and zizmor, and the
fork-safety properties the README promises, checked on the YAML itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml")) + sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed: run `make venv` (it is in the [dev] extra)")
    return path


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_actionlint_is_clean():
    result = subprocess.run([tool("actionlint"), *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_auditor_persona_is_clean():
    files = [str(p.relative_to(ROOT)) for p in WORKFLOWS] + ["action.yml"]
    result = subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--persona=auditor", *files],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout


def test_action_steps_have_shell_and_no_interpolation_in_run():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite" and action["branding"]
    assert set(action["inputs"]) >= {"mode", "base", "head", "teacher", "student", "judge", "lab-home",
                                     "github-token", "quick"}
    assert set(action["outputs"]) == {"comment-url", "overall-delta", "verdict"}
    for step in action["runs"]["steps"]:
        assert step.get("shell") == "bash", step
        assert "${{" not in step.get("run", ""), step
        assert (ROOT / step["run"].split('"$ACTION_PATH/')[1].split('"')[0]).exists()


def test_workflows_never_interpolate_into_run_and_pin_actions():
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            assert job.get("timeout-minutes"), (path.name, job)
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), (path.name, step)
                uses = step.get("uses", "")
                if uses and not uses.startswith("./"):
                    assert len(uses.split("@")[1]) == 40, (path.name, uses)


def test_lab_pr_runs_only_default_branch_code_behind_approval():
    wf = load(ROOT / "examples" / "workflows" / "lab-pr.yml")
    assert list(wf["on"]) == ["workflow_run"] and wf["on"]["workflow_run"]["workflows"] == ["validate"]
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["lab-pr"]
    assert "self-hosted" in job["runs-on"] and job["environment"] == "lab-gpu" and job["timeout-minutes"]
    assert "write" not in str(job["permissions"])
    assert wf["concurrency"]["cancel-in-progress"] is True and "head_branch" in wf["concurrency"]["group"]
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    assert checkout["with"]["persist-credentials"] is False
    lab = next(s for s in job["steps"] if s.get("id") == "lab")
    assert lab["with"]["head"] == "${{ github.event.workflow_run.head_sha }}"  # the validated sha, as data


def test_only_the_comment_job_can_write():
    wfs = {p.stem: load(p) for p in (ROOT / "examples" / "workflows").glob("*.yml")}
    assert set(wfs) == {"validate", "lab-pr", "lab-comment", "lab-promote"}
    assert wfs["validate"]["permissions"] == {"contents": "read"} and list(wfs["validate"]["on"]) == ["pull_request"]
    assert wfs["lab-comment"]["permissions"] == {}
    assert wfs["lab-comment"]["jobs"]["comment"]["permissions"] == {"pull-requests": "write", "actions": "read"}
    assert "self-hosted" not in str(wfs["lab-comment"]["jobs"]["comment"]["runs-on"])
    assert list(wfs["lab-promote"]["on"]) == ["push"] and wfs["lab-promote"]["on"]["push"]["branches"] == ["main"]
    for name, wf in wfs.items():
        if name != "lab-comment":
            assert "write" not in yaml.safe_dump(wf.get("permissions")) + yaml.safe_dump(
                [j.get("permissions") for j in wf["jobs"].values()]), name


def test_install_pins_every_workflow_to_a_full_sha(tmp_path):
    """The examples carry one placeholder; install.sh makes them usable as they are."""
    install = ROOT / "examples" / "workflows" / "install.sh"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    result = subprocess.run(["bash", str(install), "acme/lab-hooks", str(tmp_path), "HEAD"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    installed = sorted((tmp_path / ".github" / "workflows").glob("*.yml"))
    assert [p.name for p in installed] == sorted(p.name for p in (ROOT / "examples" / "workflows").glob("*.yml"))
    for path in installed:
        text = path.read_text()
        assert f"uses: acme/lab-hooks@{head} # lab-hooks " in text and "OWNER" not in text and "0" * 40 not in text
    lint = subprocess.run([tool("actionlint"), "-config-file", str(ROOT / ".github" / "actionlint.yaml"),  # lab-gpu
                           *map(str, installed)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for args, says in ((["acme", str(tmp_path)], "expected OWNER/REPO"), (["a/b", str(tmp_path / "no")], "no such directory"),
                       (["a/b", str(tmp_path), "no-such-tag"], "not a commit")):
        bad = subprocess.run(["bash", str(install), *args], capture_output=True, text=True)
        assert bad.returncode == 2 and says in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
