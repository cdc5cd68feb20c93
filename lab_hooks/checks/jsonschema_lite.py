"""A small JSON Schema 2020-12 evaluator for the keywords our schemas use.

Why not `jsonschema` at run time: importing it costs ~200 ms, more than the
whole budget of a pre-commit run, and the comment job installs no test tools.
This evaluator covers the keywords in `schemas/` (the leaf schemas and the PR
results' schema) and refuses any other (so a schema edit can never be silently
ignored); tests/test_corpus.py checks it against `jsonschema` on every version
of the real-world corpus, tests/test_results_schema.py on results files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "deprecated"}
SUPPORTED = ANNOTATIONS | {"type", "required", "properties", "unevaluatedProperties", "items",
                           "minItems", "uniqueItems", "minLength", "const",
                           "$defs", "$ref", "enum", "minimum", "maxItems", "additionalProperties", "allOf"}

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
    if not str(schema.get("$ref", "#/$defs/")).startswith("#/$defs/"):
        raise UnsupportedSchema(f"{where}: only local references (#/$defs/NAME) are supported")
    for key, sub in {**schema.get("properties", {}), **schema.get("$defs", {})}.items():
        check_supported(sub, f"{where}/{key}")
    for i, sub in enumerate(schema.get("allOf", ())):
        check_supported(sub, f"{where}/allOf/{i}")
    for keyword in ("items", "additionalProperties"):
        if keyword in schema:
            check_supported(schema[keyword], f"{where}/{keyword}")


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


def iter_errors(schema: Any, value: Any, path: tuple = (), root: Any = None,
                types: dict | None = None) -> Iterator[SchemaError]:
    """Every error, the way jsonschema's iter_errors finds them (same paths and keywords).

    `types` replaces the checks of some JSON types (e.g. numpy scalars count as numbers)."""
    if schema is True:
        return
    if schema is False:
        yield SchemaError(path, "false", None, "not allowed")
        return
    root = schema if root is None else root
    kinds = {**_TYPES, **(types or {})}
    if "$ref" in schema:
        yield from iter_errors(root["$defs"][schema["$ref"].rsplit("/", 1)[1]], value, path, root, types)
    for sub in schema.get("allOf", ()):
        yield from iter_errors(sub, value, path, root, types)
    expected = schema.get("type")
    if expected is not None:
        allowed = [expected] if isinstance(expected, str) else expected
        if not any(kinds[t](value) for t in allowed):
            wanted = " or ".join(allowed)
            yield SchemaError(path, "type", expected,
                              f"expected {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}, got {_type_name(value)}")
            return  # the other keywords would only repeat the type problem
    if "const" in schema and _key(value) != _key(schema["const"]):
        yield SchemaError(path, "const", schema["const"], f"must be {schema['const']!r}")
    if "enum" in schema and _key(value) not in {_key(v) for v in schema["enum"]}:
        yield SchemaError(path, "enum", schema["enum"], f"must be one of {', '.join(map(repr, schema['enum']))}")
    if "minimum" in schema and kinds["number"](value) and value < schema["minimum"]:
        yield SchemaError(path, "minimum", schema["minimum"], f"must be at least {schema['minimum']}, got {value}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        yield SchemaError(path, "minLength", schema["minLength"], "must not be empty")
    if kinds["array"](value):
        if len(value) < schema.get("minItems", 0):
            yield SchemaError(path, "minItems", schema["minItems"],
                              f"has {len(value)} item{'s' * (len(value) != 1)}, at least {schema['minItems']} required")
        if len(value) > schema.get("maxItems", len(value)):
            yield SchemaError(path, "maxItems", schema["maxItems"],
                              f"has {len(value)} items, at most {schema['maxItems']} allowed")
        if schema.get("uniqueItems"):
            seen: dict[Any, int] = {}
            for i, item in enumerate(value):
                first = seen.setdefault(_key(item), i)
                if first != i:
                    yield SchemaError(path, "uniqueItems", (first, i), f"item {i + 1} repeats item {first + 1} exactly")
                    break  # jsonschema reports one uniqueItems error per array
        if "items" in schema:
            for i, item in enumerate(value):
                yield from iter_errors(schema["items"], item, path + (i,), root, types)
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                yield SchemaError(path, "required", key, f"missing required key {key!r}")
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key in value:
                yield from iter_errors(sub, value[key], path + (key,), root, types)
        extra = schema.get("additionalProperties", True)
        if extra is not True:
            for key in value:
                if key not in properties:
                    yield from iter_errors(extra, value[key], path + (key,), root, types)
        if schema.get("unevaluatedProperties") is False:
            for key in value:
                if key not in properties:
                    allowed = ", ".join(properties)
                    yield SchemaError(path, "unevaluatedProperties", key,
                                      f"unknown key {key!r} (allowed: {allowed})")
