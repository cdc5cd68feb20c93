"""Bad input to any subcommand: one line on stderr, a non-zero exit code (1 bad input, 2 usage or
a run that could not complete), never a traceback — through the installed entry point, as a
user runs it. And a command that needs an extra says which one when it is not installed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pr_repos import commit, init_repo, leaf_files

from lab_hooks.cli import COMMANDS

HAIKU = "compositional_skills/writing/freeform/haiku"
BROKEN = "version: 3\nseed_examples: [\n"


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    repo = init_repo(tmp / "repo", leaf_files(HAIKU, "Write haiku."))
    commit(repo, {"compositional_skills/writing/broken/qna.yaml": BROKEN}, "a broken leaf")
    data = tmp / "data" / "leaves" / "x"
    data.mkdir(parents=True)
    (data / "messages.jsonl").write_text('{"id": 1}\nnot json\n')
    return {"tmp": tmp, "repo": repo, "broken": repo / "compositional_skills/writing/broken/qna.yaml",
            "data": tmp / "data"}


def run(place, *argv: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    code = ("import sys; sys.modules.update(dict.fromkeys(sys.argv[1].split(',')) if sys.argv[1] else {}); "
            "from lab_hooks.cli import main; sys.exit(main(sys.argv[2:]))")
    env = {**os.environ, "LAB_HOME": str(place["tmp"] / "home"), "GITHUB_TOKEN": ""}
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([sys.executable, "-c", code, ",".join(blocked), *argv], cwd=place["repo"], env=env,
                          capture_output=True, text=True, timeout=120)


CASES = [  # (argv, exit code, what the one line says); {broken}, {data}, {tmp} are filled in
    (["validate", "--base", "nosuch"], 1, "base ref 'nosuch' is not a commit"),
    (["baseline", "--root", "{tmp}/nowhere"], 2, "--root {tmp}/nowhere: not a directory"),
    (["baseline", "{tmp}/nowhere/qna.yaml"], 1, "{tmp}/nowhere/qna.yaml: no such file or directory"),
    (["diff", "--base", "nosuch"], 1, "base ref 'nosuch' is not a commit"),
    (["diff", "--repo", "{tmp}", "--base", "main"], 1, "not inside a git repository"),
    (["generate", "--leaf", "{broken}"], 1, "{broken}:3:1: LH003"),
    (["generate", "--base", "nosuch"], 1, "base ref 'nosuch' is not a commit"),
    (["preview", "{broken}"], 1, "{broken}:3:1: LH003"),
    (["train", "--base", "nosuch", "--data", "{tmp}/nodata"], 1, "base ref 'nosuch' is not a commit"),
    (["train", "--data", "{data}"], 1, "messages.jsonl:2:1: not JSON"),
    (["train", "--data", "{tmp}/nodata"], 1, "--data {tmp}/nodata: not a directory"),
    (["eval", "--base-model", "nonsense", "--candidate", "b"], 1, "model spec 'nonsense'"),
    (["eval", "--base-model", "embedded:smollm2-135m-instruct", "--candidate", "hf:/x", "--no-cache",
      "--branch-leaves", "{broken}"], 1, "{broken}:3:1: LH003"),
    (["pr", "--base", "nosuch", "--head", "HEAD", "--no-progress", "--out", "{tmp}/pr-out"], 1,
     "stage diff failed: base ref 'nosuch' is not a commit"),
    (["promote", "--base", "nosuch"], 1, "'nosuch' is not a commit"),
    (["comment", "--results", "{tmp}/none.json", "--pr", "1", "--github-repo", "a/b"], 2, "$GITHUB_TOKEN is empty"),
    (["models", "pull", "gpt-5"], 2, "unknown asset 'gpt-5'"),
    (["store", "ref", "set", "main/checkpoint", "nosuch"], 2, "nosuch"),
    (["nope"], 2, "unknown command 'nope'"),
]


def fill(text: str, place) -> str:
    return text.format(broken=place["broken"], data=place["data"], tmp=place["tmp"])


@pytest.mark.parametrize("argv, code, says", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_input_is_one_line_and_a_non_zero_exit(place, argv, code, says):
    result = run(place, *(fill(a, place) for a in argv))
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and fill(says, place) in lines[0], result.stderr
    if argv[0] != "nope":  # (an unknown command is followed by the list of commands)
        assert len(lines) == 1, result.stderr


def test_every_subcommand_has_a_bad_input_case():
    assert {c[0][0] for c in CASES} >= set(COMMANDS)


ML = ("torch", "transformers", "numpy", "peft", "safetensors", "accelerate", "tqdm", "vllm")


@pytest.mark.parametrize("argv", [
    ["train", "--data", "{tmp}/ok-data", "--no-progress"],
    ["eval", "--base-model", "embedded:smollm2-135m-instruct", "--candidate", "hf:/x", "--no-cache", "--no-mtbench",
     "--branch-leaves", "{repo}/" + HAIKU + "/qna.yaml", "--resamples", "1000"],
])
def test_without_the_ml_extra_a_command_says_what_to_install(place, argv):
    ok = place["tmp"] / "ok-data" / "leaves" / "y"
    ok.mkdir(parents=True, exist_ok=True)
    (ok / "messages.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    result = run(place, *(a.format(tmp=place["tmp"], repo=place["repo"]) for a in argv), blocked=ML)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"lab-hooks {argv[0]}: this command needs the [ml] extra") and "lab-hooks[ml]" in line


def test_the_hook_needs_no_extra_and_no_jsonschema(place):
    result = run(place, "validate", f"{HAIKU}/qna.yaml", blocked=(*ML, "jsonschema", "git"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("committed", [False, True], ids=["in the working tree", "committed"])
def test_validate_base_reports_a_symlinked_leaf_in_one_line(tmp_path, committed):
    """The hook's `validate --base` never skips a leaf file that is a symlink (0 files checked,
    exit 0 was the bug): one LH001 line at the link, exit 1."""
    repo = init_repo(tmp_path / "repo", leaf_files(HAIKU, "Write haiku."))
    link = "compositional_skills/writing/freeform/evil/qna.yaml"
    (repo / link).parent.mkdir(parents=True)
    (repo / link).symlink_to("../../../../../outside.yaml")
    (tmp_path / "outside.yaml").write_text("version: 3\n")
    if committed:
        commit(repo, {}, "a symlinked leaf")
    result = run({"tmp": tmp_path, "repo": repo}, "validate", "--base", "HEAD~1" if committed else "HEAD")
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    findings = [line for line in result.stdout.splitlines() if " LH607 " not in line]  # machine-dependent
    assert findings == [f"{link}:1:1: error LH001 is a symlink (to ../../../../../outside.yaml); "
                        "leaves must be regular files"]
