"""YAML -> plain data plus the line:col of every node, safe against hostile files.

Built from libyaml's event stream instead of `yaml.safe_load`: no recursion (so
10,000-level nesting cannot blow the C stack), aliases are shared rather than
copied and their expanded size is budgeted (billion laughs is a diagnostic, not
a hang downstream), duplicate keys are recorded instead of silently dropped,
and every value keeps the position a diagnostic should point at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

try:  # libyaml's C parser when present: ~10x faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _Loader

MAX_DEPTH = 100
MAX_EXPANDED_NODES = 100_000

Pos = tuple[int, int]  # 1-based line, column
NodePath = tuple[Any, ...]  # keys and indexes from the root

_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_resolver = Resolver()
_constructor = SafeConstructor()
_PENDING = object()
_MERGE = object()


class YamlError(Exception):
    """A file that is not usable YAML; `pos` is where the problem is."""

    def __init__(self, message: str, pos: Pos = (1, 1)):
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass
class Document:
    data: Any
    marks: dict[NodePath, Pos] = field(default_factory=dict)  # where each value starts
    key_marks: dict[NodePath, Pos] = field(default_factory=dict)  # where each key starts
    duplicate_keys: list[tuple[NodePath, Pos, Pos]] = field(default_factory=list)
    # For lint: (path, is_mapping, pos, flow_style) of every collection, and the
    # (first, last) content lines of every block scalar (| or >): their text is data.
    collections: list[tuple[NodePath, bool, Pos, bool]] = field(default_factory=list)
    block_scalars: list[tuple[int, int]] = field(default_factory=list)

    def pos(self, path: NodePath) -> Pos:
        """Position of `path`, or of its nearest ancestor that exists."""
        path = tuple(path)
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (1, 1))


@dataclass(slots=True)
class _Frame:
    path: NodePath
    value: Any
    pos: Pos
    anchor: str | None
    is_list: bool
    size: int = 1
    key: Any = _PENDING
    key_pos: Pos = (1, 1)


def _pos(mark) -> Pos:
    return (mark.line + 1, mark.column + 1)


# First characters after which a plain scalar may resolve to something other than a string.
_RESOLVABLE_FIRST = frozenset(k for k in Resolver.yaml_implicit_resolvers if k is not None)


def _plain_text(event) -> bool:
    """A string as written: no tag, and quoted, a block, or plain text that cannot be a
    number/bool/null/date (most scalars: they skip the resolver)."""
    return event.tag is None and bool(event.style or event.value[:1] not in _RESOLVABLE_FIRST)


def _scalar(event) -> Any:
    """The value of a scalar that is not `_plain_text`."""
    tag = event.tag
    if tag is None or tag == "!":
        tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _MERGE_TAG:
        return _MERGE
    construct = SafeConstructor.yaml_constructors.get(tag)
    if construct is None:
        raise YamlError(f"unsupported YAML tag {tag}", _pos(event.start_mark))
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return construct(_constructor, node)
    except (yaml.YAMLError, ValueError) as exc:
        raise YamlError(f"bad {tag.rsplit(':', 1)[-1]} value {event.value!r}: {exc}", _pos(event.start_mark)) from None


class _ParserError(YamlError):
    """A syntax error reported by the YAML parser itself (not one of our limits)."""


def load(text: str) -> Document:
    """Parse one YAML document. Raises YamlError with the parser's line:col.

    libyaml rejects some tabs that PyYAML's pure-Python parser (the one
    InstructLab uses) accepts, e.g. inside a block scalar; files that libyaml
    rejects over a tab are parsed again with the pure-Python parser before
    they count as invalid.
    """
    try:
        return _load(text, _Loader)
    except _ParserError as exc:
        if _Loader is yaml.SafeLoader or "tab" not in exc.message:
            raise
        return _load(text, yaml.SafeLoader)


def _load(text: str, loader_class) -> Document:
    doc = Document(data=None)
    marks, key_marks = doc.marks, doc.key_marks
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    documents = 0
    seen_root = False

    def attach(value: Any, size: int, pos: Pos) -> None:
        nonlocal seen_root
        if not stack:
            doc.data, seen_root = value, True
            return
        frame = stack[-1]
        frame.size += size
        if frame.size > MAX_EXPANDED_NODES:
            raise YamlError(
                f"document expands to more than {MAX_EXPANDED_NODES} nodes (alias bomb?)", pos
            )
        if frame.is_list:
            marks[frame.path + (len(frame.value),)] = pos
            frame.value.append(value)
        elif frame.key is _PENDING:
            try:
                hash(value)
            except TypeError:
                raise YamlError("a mapping key must be a plain scalar", pos) from None
            path = frame.path + (value,)
            if value in frame.value and value is not _MERGE:
                doc.duplicate_keys.append((path, key_marks[path], pos))
            frame.key, frame.key_pos = value, pos
        else:
            key, frame.key = frame.key, _PENDING
            if key is _MERGE:
                for part in value if isinstance(value, list) else [value]:
                    if not isinstance(part, dict):
                        raise YamlError("a merge key (<<) must point at a mapping", pos)
                    for k, v in part.items():
                        frame.value.setdefault(k, v)
                return
            path = frame.path + (key,)
            frame.value[key] = value
            marks[path] = pos
            key_marks[path] = frame.key_pos

    def child_path() -> NodePath:
        if not stack:
            return ()
        frame = stack[-1]
        return frame.path + ((len(frame.value),) if frame.is_list else (frame.key,))

    loader = loader_class(text)
    try:
        while True:
            event = loader.get_event()
            cls = event.__class__
            if cls is yaml.ScalarEvent:  # the commonest event first
                value = event.value if _plain_text(event) else _scalar(event)
                style, mark = event.style, event.start_mark
                if style == "|" or style == ">":
                    end = event.end_mark
                    doc.block_scalars.append((mark.line + 2, end.line + (end.column > 0)))
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
                attach(value, 1, (mark.line + 1, mark.column + 1))
            elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                pos = _pos(event.start_mark)
                if event.tag not in _PLAIN_COLLECTION_TAGS:
                    raise YamlError(f"unsupported YAML tag {event.tag}", pos)
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(f"nesting deeper than {MAX_DEPTH} levels", pos)
                if stack and isinstance(stack[-1].value, dict) and stack[-1].key is _PENDING:
                    raise YamlError("a mapping key must be a plain scalar", pos)
                is_mapping = cls is yaml.MappingStartEvent
                path = child_path()
                doc.collections.append((path, is_mapping, pos, bool(event.flow_style)))
                stack.append(_Frame(path, {} if is_mapping else [], pos, event.anchor, not is_mapping))
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame.anchor:
                    anchors[frame.anchor] = (frame.value, frame.size)
                attach(frame.value, frame.size, frame.pos)
            elif cls is yaml.AliasEvent:
                if event.anchor not in anchors:
                    raise YamlError(f"unknown alias *{event.anchor}", _pos(event.start_mark))
                value, size = anchors[event.anchor]
                attach(value, size, _pos(event.start_mark))
            elif cls is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise YamlError("more than one YAML document in the file", _pos(event.start_mark))
            elif cls is yaml.StreamEndEvent:
                break
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise _ParserError(message, _pos(mark) if mark else (1, 1)) from None
    except yaml.YAMLError as exc:
        raise _ParserError(f"invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
    if not seen_root:
        doc.data = None
    return doc
