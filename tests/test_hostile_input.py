"""Hostile files: each gets exactly one clear diagnostic, in bounded time and
memory, without a traceback, and the other files of the run are still checked."""

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HAIKU = REPO / "taxonomy/compositional_skills/writing/freeform/haiku"
IDIOMS = REPO / "taxonomy/compositional_skills/linguistics/freeform/idioms"
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space for the whole run


def hostile_files(root: Path) -> dict[str, tuple[str, str]]:
    """leaf folder -> (expected code, expected words in the message)"""
    base = root / "compositional_skills/hostile"
    good = HAIKU.joinpath("qna.yaml").read_text()
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    contents = {
        "alias_bomb": ("\n".join(lines) + "\n").encode(),
        "huge": b"key: value\n" * (50 * 1024 * 1024 // 11 + 1),
        "binary": bytes(range(256)) * 64,
        "bad_utf8": b"version: 3\ncreated_by: caf\xe9\n",
        "deep_nesting": b"[" * 10_000 + b"]" * 10_000 + b"\n",
        "duplicate_keys": good.replace("created_by: lab-hooks\n", "created_by: lab-hooks\ncreated_by: someone\n").encode(),
    }
    expected = {
        "alias_bomb": ("LH003", "alias bomb"),
        "huge": ("LH001", "over the 1,000,000-byte limit"),
        "binary": ("LH002", "binary file"),
        "bad_utf8": ("LH002", "invalid UTF-8 (byte 0xe9)"),
        "deep_nesting": ("LH003", "nesting"),  # our 100-level limit, or libyaml's own
        "duplicate_keys": ("LH204", "duplicate key 'created_by'"),
        "symlink_out": ("LH001", "is a symlink"),
        "fifo": ("LH001", "not a regular file"),
    }
    for name in expected:
        folder = base / name
        folder.mkdir(parents=True)
        shutil.copy(HAIKU / "attribution.txt", folder)
    for name, data in contents.items():
        (base / name / "qna.yaml").write_bytes(data)
    outside = root.parent / "outside.yaml"
    outside.write_text(good)
    (base / "symlink_out" / "qna.yaml").symlink_to(outside)
    os.mkfifo(base / "fifo" / "qna.yaml")
    return {str((base / name / "qna.yaml").relative_to(root)): want for name, want in expected.items()}


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_hostile_files_get_one_diagnostic_each(tmp_path):
    root = tmp_path / "taxonomy"
    expected = hostile_files(root)
    good = root / "compositional_skills/linguistics/freeform/idioms"
    shutil.copytree(IDIOMS, good)
    files = list(expected) + [str((good / "qna.yaml").relative_to(root))]
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "lab_hooks", "validate", *files], cwd=root, capture_output=True,
                         text=True, timeout=60, preexec_fn=_limit_memory, env={**os.environ, "GITHUB_ACTIONS": ""})
    elapsed = time.monotonic() - start
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    lines = run.stdout.splitlines()
    assert len(lines) == len(expected), run.stdout
    for file, (code, words) in expected.items():
        [line] = [line for line in lines if line.startswith(file + ":")]
        assert f" error {code} " in line and words in line, line
    assert "idioms" not in run.stdout  # the good leaf was checked and is clean
    assert f"{len(files)} files checked: {len(expected)} errors" in run.stderr
    assert elapsed < 20
