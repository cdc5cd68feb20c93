"""The results file's contract: the type of every field the PR comment renders.

`lab-hooks pr` writes results.json and the commenting job reads it back, so the
comment must hold whatever that JSON holds. `problem(run)` is None for a file
that matches results.schema.json, else one line saying where it does not (a
count that is a string is never pasted into a comment, it makes the file malformed).
"""

from __future__ import annotations

import json
import numbers
from functools import lru_cache
from pathlib import Path

from lab_hooks.report.escape import one_line

SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def is_number(value: object) -> bool:
    """A real number, not a bool (numpy's scalars count: a run built in-process may hold them)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine_many({
        "number": lambda _, v: is_number(v),
        "integer": lambda _, v: is_number(v) and float(v).is_integer(),
        "array": lambda _, v: isinstance(v, (list, tuple)),
    })
    return validators.extend(Draft202012Validator, type_checker=checker)(schema())


def problem(run: object) -> str | None:
    """None when `run` matches the schema, else `at <path>: <what is wrong>` on one line."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(run))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "the top level"
    return one_line(f"at {where}: {error.message}", 300)


def declared(path: tuple) -> bool:
    """Whether the schema gives a type to the field at `path` (keys and list indexes)."""
    node = schema()
    for key in path:
        node = _resolve(node)
        if isinstance(key, int):
            node = node.get("items")
        else:
            props = {k: v for sub in [node, *node.get("allOf", [])] for k, v in _resolve(sub).get("properties", {}).items()}
            extra = node.get("additionalProperties")
            node = props.get(key, extra if isinstance(extra, dict) else None)
        if node is None:
            return False
    return True


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = schema()["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node
