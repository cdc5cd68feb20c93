"""Artifact keys: the sha256 of everything that determines an artifact.

Same inputs -> same key -> computed once. Callers pass every input that changes
the result (a leaf's blob sha, the hashes of the pipeline and prompt files, the
teacher spec, the seed; or the parent checkpoint's key, the mix hash and the
training config) and nothing that does not (timestamps, paths of temp dirs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

KEY_LENGTH = 64  # hex sha256


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8; only JSON types."""
    _check_json(value, "inputs")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_json(value: Any, where: str) -> None:
    # json.dumps would quietly turn tuples into lists and refuse sets only at
    # run time; an input that is not plain JSON is a caller's bug, say where.
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            _check_json(item, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON value (pass str/int/float/bool/None/list/dict)")


def artifact_key(kind: str, **inputs: Any) -> str:
    """The key of the artifact of `kind` computed from `inputs` (sha256 hex)."""
    if not kind or not isinstance(kind, str):
        raise ValueError("artifact kind must be a non-empty string")
    payload = canonical_json({"kind": kind, "inputs": inputs})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def is_key(value: str) -> bool:
    return len(value) == KEY_LENGTH and all(c in "0123456789abcdef" for c in value)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | os.PathLike) -> str:
    """A hash of a file, or of a directory's relative paths and file contents.

    For inputs such as a pipeline folder of prompt files: any edit, rename,
    addition or removal changes it; mtimes and permissions do not.
    """
    root = Path(root)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        digest.update(f"{rel}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()
