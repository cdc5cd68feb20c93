"""The Action and the example workflows: linted by actionlint and zizmor, and the
fork-safety properties the README promises, checked on the YAML itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import gh_expr
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
                                     "github-token", "quick", "artifacts-url"}
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


# -- who may trigger what (issue 15, items 1 and 3): the jobs' `if:` evaluated on real event shapes -----------

REPO = "acme/taxonomy"


def _event(**run) -> dict:
    """The contexts of a workflow_run-triggered job: `run` is the triggering run's fields."""
    return {"github": {"repository": REPO, "event": {"repository": {"default_branch": "main"},
                                                     "workflow_run": run}}}


def _job_if(workflow: str, job: str) -> str:
    return load(ROOT / "examples" / "workflows" / f"{workflow}.yml")["jobs"][job]["if"]


def _lab_pr_run(**over) -> dict:
    """A run of this repository's own lab-pr.yml: started by workflow_run, on the default branch."""
    return {"event": "workflow_run", "path": ".github/workflows/lab-pr.yml", "conclusion": "success",
            "repository": {"full_name": REPO}, "head_repository": {"full_name": REPO}, "head_branch": "main", **over}


@pytest.mark.parametrize("case, run, runs", [
    ("lab-pr finished", _lab_pr_run(), True),
    ("lab-pr failed: the PR still hears why", _lab_pr_run(conclusion="failure"), True),
    ("lab-pr cancelled by a newer push", _lab_pr_run(conclusion="cancelled"), False),
    ("a fork's own workflow named lab-pr", _lab_pr_run(event="pull_request", head_repository={"full_name": "mallory/taxonomy"},
                                                      head_branch="patch-1"), False),
    ("a fork's lab-pr at the real path", _lab_pr_run(event="pull_request", head_branch="patch-1"), False),
    ("a branch's workflow named lab-pr, run on push", _lab_pr_run(event="push", head_branch="topic"), False),
    ("a pull_request_target workflow named lab-pr", _lab_pr_run(event="pull_request_target"), False),
    ("another workflow file named lab-pr", _lab_pr_run(path=".github/workflows/other.yml"), False),
    ("a run in another repository", _lab_pr_run(repository={"full_name": "mallory/taxonomy"}), False),
    ("a run on another branch", _lab_pr_run(head_branch="topic"), False),
])
def test_lab_comment_trusts_only_lab_pr_runs_of_this_repository(case, run, runs):
    assert gh_expr.truthy(gh_expr.evaluate(_job_if("lab-comment", "comment"), _event(**run))) is runs, case


@pytest.mark.parametrize("case, run, runs", [
    ("validate passed on a PR", {}, True),
    ("validate failed", {"conclusion": "failure"}, False),
    ("validate on a push", {"event": "push"}, False),
    ("a fork's workflow named validate at another path", {"path": ".github/workflows/x.yml"}, False),
])
def test_lab_pr_runs_only_after_validate_passed_on_a_pr(case, run, runs):
    run = {"event": "pull_request", "path": ".github/workflows/validate.yml", "conclusion": "success",
           "repository": {"full_name": REPO}, "head_repository": {"full_name": "fork/taxonomy"}, **run}
    assert gh_expr.truthy(gh_expr.evaluate(_job_if("lab-pr", "lab-pr"), _event(**run))) is runs, case


def test_the_expression_reader_is_github_s():
    ctx = {"a": {"b": "Main"}}
    assert gh_expr.evaluate("a.b == 'main' && !(a.c == 'x') || false", ctx) is True  # case-insensitive
    assert gh_expr.evaluate("a.missing == 'x'", ctx) is False
    with pytest.raises(ValueError):
        gh_expr.evaluate("contains(a.b, 'x')", ctx)


def test_lab_pr_publishes_only_the_report_and_the_verified_number():
    job = load(ROOT / "examples" / "workflows" / "lab-pr.yml")["jobs"]["lab-pr"]
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    paths = [p.strip() for p in upload["with"]["path"].splitlines() if p.strip()]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["results.json", "comment.md", "number", "head_sha"]
    for step in job["steps"]:  # the number is written by the action once fetch-pr.sh verified it, nowhere else
        assert step.get("if") != "always()" or step is upload, step
        assert step is upload or "/out" not in yaml.safe_dump(step.get("env", {})), step
    lab = next(s for s in job["steps"] if s.get("id") == "lab")
    assert lab["with"]["github-token"] == "${{ github.token }}" and "write" not in str(job["permissions"])
    comment = load(ROOT / "examples" / "workflows" / "lab-comment.yml")["jobs"]["comment"]
    post = next(s for s in comment["steps"] if s.get("with", {}).get("mode") == "comment")
    assert post["with"]["head"] == "${{ steps.pr.outputs.head }}"  # --expect-head: the API must agree
    assert post["with"]["artifacts-url"] == "${{ github.event.workflow_run.html_url }}"


def test_a_documents_only_change_triggers_validation_and_promotion():
    """An in-repo knowledge document is part of its leaf (the diff and the taxonomy fingerprint
    count it), so a merge that changes only a document must run the jobs too."""
    for name in ("validate.yml", "lab-promote.yml"):
        trigger = load(ROOT / "examples" / "workflows" / name)["on"]
        paths = next(event["paths"] for event in trigger.values() if isinstance(event, dict) and "paths" in event)
        assert "documents/**" in paths and "knowledge/**" in paths, name
