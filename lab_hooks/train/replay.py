"""Where the datasets come from: `lab-hooks generate` output dirs and main's buffer in the store.

Main's replay buffer is a store record under the ref "main/replay":
{"leaves": {leaf name: key of its "sdg-leaf" artifact}}. The data itself stays in
the SDG artifacts, so advancing the buffer when a PR merges writes one small record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lab_hooks.errors import InputError
from lab_hooks.store import Store, StoreError, artifact_key

BUFFER_REF = "main/replay"
CHECKPOINT_REF = "main/checkpoint"


@dataclass(frozen=True)
class MainState:
    """Main's checkpoint and replay buffer as one read of both refs (they move together)."""

    checkpoint: str | None = None  # checkpoint artifact key; None: the untrained student
    replay: str | None = None  # the buffer record's key
    buffer: dict[str, str] = field(default_factory=dict)  # {leaf: sdg-leaf artifact key}
    commit: str | None = None  # the commit last promoted

    @property
    def refs(self) -> dict[str, str | None]:
        """The refs as they are now: the `expect` of a compare-and-swap that moves them."""
        return {CHECKPOINT_REF: self.checkpoint, BUFFER_REF: self.replay}


def read_main(store: Store) -> MainState:
    refs = store.refs("main/")
    replay = refs.get(BUFFER_REF)
    record = (store.record_get(replay) if replay else None) or {}
    return MainState(refs.get(CHECKPOINT_REF), replay, dict(record.get("leaves") or {}), record.get("commit"))


def read_jsonl(path: Path) -> list[dict]:
    """Samples of one JSONL file; a broken line is a one-line error naming file:line."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}:{exc.colno}: not JSON ({exc.msg})") from None
    return rows


def read_generated(out_dir: Path) -> dict[str, list[dict]]:
    """{leaf name: samples} from a `lab-hooks generate` output dir (leaves/<leaf>/messages.jsonl)."""
    root = Path(out_dir) / "leaves"
    return {
        path.parent.relative_to(root).as_posix(): read_jsonl(path)
        for path in sorted(root.rglob("messages.jsonl"))
    }


def buffer_leaves(store: Store, ref: str = BUFFER_REF) -> dict[str, str]:
    """{leaf name: sdg-leaf artifact key} of the buffer `ref` names; empty before the first merge."""
    key = store.get_ref(ref)
    return dict(store.record_get(key)["leaves"]) if key else {}


def load_buffer(store: Store, ref: str = BUFFER_REF) -> dict[str, list[dict]]:
    return load_datasets(store, buffer_leaves(store, ref), ref)


def load_datasets(store: Store, leaves: Mapping[str, str], what: str = "replay buffer") -> dict[str, list[dict]]:
    """{leaf: samples} of the SDG artifacts a buffer names ({leaf: key})."""
    buffer = {}
    for leaf, key in leaves.items():
        path = store.get(key)
        if path is None:
            raise StoreError(f"{what}: the data of {leaf} ({key[:12]}) is missing from the store (run `lab-hooks store verify`)")
        buffer[leaf] = read_jsonl(path / "messages.jsonl")
    return buffer


def save_buffer(store: Store, leaves: Mapping[str, str], **about) -> str:
    """Record a buffer ({leaf: sdg-leaf key}, plus `about` fields such as the commit it
    belongs to); returns its key for `store.set_refs`. The record depends on every
    dataset it lists, so `store gc` keeps them for as long as the record lives."""
    value = {"leaves": dict(sorted(leaves.items())), **about}
    key = artifact_key("replay", **value)
    store.record_put(key, value, deps=value["leaves"].values())
    return key


def advanced_leaves(leaves: Mapping[str, str], changed: Mapping[str, str], removed: Iterable[str]) -> dict[str, str]:
    """The buffer's {leaf: key} once a PR merges: removed leaves out, changed leaves' new data in."""
    gone = set(removed)
    return dict(sorted({**{k: v for k, v in leaves.items() if k not in gone}, **changed}.items()))
