"""Schema checks: version, then the leaf's JSON Schema, each error at the
line:col of the node it is about."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import ERROR, Finding
from lab_hooks.checks.jsonschema_lite import SchemaError, check_supported, iter_errors
from lab_hooks.checks.registry import leaf_check, rule
from lab_hooks.taxonomy.leaf import Kind, Leaf

VERSION_MISSING = rule("LH101", "version-missing", ERROR, "no `version:` key (InstructLab then assumes the obsolete version 1)",
                       leaf_level=True)
VERSION_UNSUPPORTED = rule("LH102", "version-unsupported", ERROR, "no schema for this version of this tree (knowledge needs 3; skills 1-3)")
REQUIRED = rule("LH110", "missing-key", ERROR, "a required key is missing")
UNKNOWN_KEY = rule("LH111", "unknown-key", ERROR, "a key the schema does not define")
WRONG_TYPE = rule("LH112", "wrong-type", ERROR, "a value of the wrong type (e.g. a number where text is expected)")
EMPTY_VALUE = rule("LH113", "empty-value", ERROR, "an empty string where text is required")
TOO_FEW = rule("LH114", "too-few-items", ERROR, "too few items (skills v2+: 5 seeds; knowledge: 5 contexts x 3 Q&A)")
REPEATED = rule("LH115", "repeated-item", ERROR, "an item repeats an earlier one exactly (seeds, Q&A, patterns)")
WRONG_VALUE = rule("LH116", "wrong-value", ERROR, "a value the schema does not allow (e.g. `version` not matching its schema)")

_RULE_FOR = {"required": REQUIRED, "unevaluatedProperties": UNKNOWN_KEY, "type": WRONG_TYPE,
             "minLength": EMPTY_VALUE, "minItems": TOO_FEW, "uniqueItems": REPEATED}


def schema_dir() -> Path:
    """`lab_hooks/schemas` in an installed wheel, else the repository's `schemas/`."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


@lru_cache(maxsize=None)
def load_schema(version: int, tree: str) -> dict | None:
    """The schema for a tree at a version, or None when there is none."""
    path = schema_dir() / f"v{version}" / f"{tree}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    check_supported(schema, str(path))
    return schema


def schema_version(value: Any) -> int | None:
    """The version that picks the schema, chosen as InstructLab does: missing is 1,
    a non-integer is converted if it can be (the schema then rejects its type)."""
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 1


def schema_tree(leaf: Leaf) -> str:
    """The tree whose schema applies; outside the known trees, InstructLab's guess."""
    if leaf.kind is not None:
        return leaf.kind.value
    return Kind.KNOWLEDGE.value if "document" in leaf.doc.data else Kind.COMPOSITIONAL.value


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "top level"


def _finding(leaf: Leaf, error: SchemaError) -> Finding:
    doc, where = leaf.doc, dotted(error.path)
    if error.keyword == "unevaluatedProperties":
        key_path = error.path + (error.detail,)
        return UNKNOWN_KEY.at(leaf.file, doc.key_marks.get(key_path, doc.pos(error.path)),
                              f"{where}: {error.message}" if error.path else error.message)
    if error.keyword == "uniqueItems":
        first, repeat = error.detail
        return REPEATED.at(leaf.file, doc.pos(error.path + (repeat,)),
                           f"{dotted(error.path + (repeat,))} repeats {dotted(error.path + (first,))} exactly")
    if error.keyword == "required":
        return REQUIRED.at(leaf.file, doc.pos(error.path), f"{where}: {error.message}" if error.path else error.message)
    return _RULE_FOR.get(error.keyword, WRONG_VALUE).at(leaf.file, doc.pos(error.path), f"{where}: {error.message}")


@leaf_check
def check_schema(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    data = leaf.doc.data
    version = schema_version(data.get("version"))
    if "version" not in data:
        yield VERSION_MISSING.at(leaf.file, (1, 1), "no `version:` key; add `version: 3`")
    tree = schema_tree(leaf)
    schema = load_schema(version, tree) if version > 0 else None
    if schema is None:
        pos = leaf.doc.pos(("version",))
        hint = "3" if tree == Kind.KNOWLEDGE.value else "1, 2 or 3"
        yield VERSION_UNSUPPORTED.at(leaf.file, pos, f"{tree} version {data.get('version', 1)!r} is not supported (use {hint})")
        return
    for error in iter_errors(schema, data):
        yield _finding(leaf, error)
