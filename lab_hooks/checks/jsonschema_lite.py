"""A small JSON Schema 2020-12 evaluator for the keywords our leaf schemas use.

Why not `jsonschema` on the hook path: importing it costs ~200 ms, more than the
whole budget of a pre-commit run. This evaluator covers the keywords in
`schemas/` and refuses any other (so a schema edit can never be silently
ignored); tests/test_corpus.py checks it against `jsonschema` on every
version of the real-world corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "deprecated"}
SUPPORTED = ANNOTATIONS | {"type", "required", "properties", "unevaluatedProperties", "items",
                           "minItems", "uniqueItems", "minLength", "const"}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


class UnsupportedSchema(Exception):
    pass


@dataclass(frozen=True)
class SchemaError:
    path: tuple  # keys and indexes from the root to the failing instance (as jsonschema's)
    keyword: str  # the JSON Schema keyword that failed
    detail: Any  # the missing or unknown key, (first, repeat) indexes, the bound, ...
    message: str


def check_supported(schema: Any, where: str = "#") -> None:
    """Raise UnsupportedSchema if the schema uses a keyword this module cannot evaluate."""
    if isinstance(schema, bool):
        return
    unknown = set(schema) - SUPPORTED
    if unknown or schema.get("unevaluatedProperties", False) is not False:
        raise UnsupportedSchema(f"{where}: unsupported keyword(s) {sorted(unknown) or ['unevaluatedProperties']}")
    for key, sub in schema.get("properties", {}).items():
        check_supported(sub, f"{where}/properties/{key}")
    if "items" in schema:
        check_supported(schema["items"], f"{where}/items")


def _key(value: Any) -> Any:
    """A hashable form in which equal JSON values (and only those) are equal: 1 == 1.0, True != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_key(v) for v in value))
    if isinstance(value, (int, float)):
        return ("number", value)
    return (type(value).__name__, value)


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__  # e.g. a YAML date


def iter_errors(schema: Any, value: Any, path: tuple = ()) -> Iterator[SchemaError]:
    """Every error, the way jsonschema's iter_errors finds them (same paths and keywords)."""
    if schema is True:
        return
    if schema is False:
        yield SchemaError(path, "false", None, "not allowed")
        return
    expected = schema.get("type")
    if expected is not None and not _TYPES[expected](value):
        yield SchemaError(path, "type", expected, f"expected {'an' if expected[0] in 'aeiou' else 'a'} {expected}, got {_type_name(value)}")
        return  # the other keywords would only repeat the type problem
    if "const" in schema and _key(value) != _key(schema["const"]):
        yield SchemaError(path, "const", schema["const"], f"must be {schema['const']!r}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        yield SchemaError(path, "minLength", schema["minLength"], "must not be empty")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield SchemaError(path, "minItems", schema["minItems"],
                              f"has {len(value)} item{'s' * (len(value) != 1)}, at least {schema['minItems']} required")
        if schema.get("uniqueItems"):
            seen: dict[Any, int] = {}
            for i, item in enumerate(value):
                first = seen.setdefault(_key(item), i)
                if first != i:
                    yield SchemaError(path, "uniqueItems", (first, i), f"item {i + 1} repeats item {first + 1} exactly")
                    break  # jsonschema reports one uniqueItems error per array
        if "items" in schema:
            for i, item in enumerate(value):
                yield from iter_errors(schema["items"], item, path + (i,))
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                yield SchemaError(path, "required", key, f"missing required key {key!r}")
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key in value:
                yield from iter_errors(sub, value[key], path + (key,))
        if schema.get("unevaluatedProperties") is False:
            for key in value:
                if key not in properties:
                    allowed = ", ".join(properties)
                    yield SchemaError(path, "unevaluatedProperties", key,
                                      f"unknown key {key!r} (allowed: {allowed})")
