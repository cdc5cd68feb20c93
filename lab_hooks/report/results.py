"""The results file's contract: the type of every field the PR comment renders.

`lab-hooks pr` writes results.json and the commenting job reads it back, so the
comment must hold whatever that JSON holds. The contract is a versioned JSON
Schema, schemas/pr-results/v{VERSION}.json; results.json names it in `$schema`.
`problem(run)` is None for a file that matches it, else one line saying where it
does not (a count that is a string is never pasted into a comment, it makes the
file malformed). Checked with lab_hooks.checks.jsonschema_lite: the comment job
needs no `jsonschema` package.
"""

from __future__ import annotations

import json
import numbers
from functools import lru_cache
from pathlib import Path

from lab_hooks.checks.jsonschema_lite import check_supported, iter_errors
from lab_hooks.checks.schema import schema_dir
from lab_hooks.report.escape import one_line

VERSION = 2  # bump with every change of the schema, in a new file beside the old one


def schema_file(version: int = VERSION) -> Path:
    return schema_dir() / "pr-results" / f"v{version}.json"


@lru_cache(maxsize=1)
def schema() -> dict:
    loaded = json.loads(schema_file().read_text(encoding="utf-8"))
    check_supported(loaded, str(schema_file()))
    return loaded


def schema_id() -> str:
    """What results.json says in `$schema`: the id of the schema it was written for."""
    return schema()["$id"]


def is_number(value: object) -> bool:
    """A real number, not a bool (numpy's scalars count: a run built in-process may hold them)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


TYPES = {"number": lambda v: is_number(v), "integer": lambda v: is_number(v) and float(v).is_integer(),
         "array": lambda v: isinstance(v, (list, tuple))}  # a run built in-process may hold numpy numbers, tuples


def problem(run: object) -> str | None:
    """None when `run` matches the schema, else `at <path>: <what is wrong>` on one line."""
    error = next(iter_errors(schema(), run, types=TYPES), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.path) or "the top level"
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
