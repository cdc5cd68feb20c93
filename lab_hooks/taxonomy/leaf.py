"""The `Leaf` value every stage reads: one `qna.yaml`, parsed, with line marks."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lab_hooks.taxonomy.yamlmarks import Document, Pos


class Kind(str, Enum):
    KNOWLEDGE = "knowledge"
    COMPOSITIONAL = "compositional_skills"
    FOUNDATIONAL = "foundational_skills"

    @property
    def is_skill(self) -> bool:
        return self is not Kind.KNOWLEDGE


TOP_LEVELS = {k.value: k for k in Kind}
LEAF_NAMES = ("qna.yaml", "qna.yml")


def git_blob_sha(content: bytes) -> str:
    """The sha git gives these bytes as a blob: ties a leaf to git objects."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def taxonomy_path(file_path: str) -> tuple[str, Kind | None]:
    """The taxonomy-relative path of a file and the tree it belongs to.

    The path starts at the last top-level folder name in it, except that a
    `knowledge` folder below a skills folder stays a skills path (InstructLab
    switches such a leaf to the knowledge schema).
    """
    parts = posixpath.normpath(file_path.replace("\\", "/")).split("/")
    start = None
    for i, part in enumerate(parts):
        if part in TOP_LEVELS:
            if part == Kind.KNOWLEDGE.value and start is not None and TOP_LEVELS[parts[start]].is_skill:
                continue
            start = i
    if start is None:
        return "/".join(p for p in parts if p not in ("", ".")), None
    return "/".join(parts[start:]), TOP_LEVELS[parts[start]]


@dataclass(frozen=True)
class Example:
    """One seed question/answer; knowledge leaves give one per Q&A of a context."""

    question: str
    answer: str
    context: str | None
    pos: Pos  # where the question is
    answer_pos: Pos
    context_index: int | None = None  # knowledge: which seed context it belongs to


@dataclass(frozen=True)
class Leaf:
    file: str  # path as given (on disk or in git)
    path: str  # taxonomy-relative, e.g. compositional_skills/writing/freeform/poems/qna.yaml
    kind: Kind | None
    grounded: bool
    version: Any
    examples: tuple[Example, ...]
    created_by: str | None
    task_description: str | None
    domain: str | None
    document_outline: str | None
    document: dict | None
    attribution: str | None
    blob_sha: str
    doc: Document = field(repr=False, compare=False)
    text: str = field(default="", repr=False, compare=False)  # the decoded file, for line-based lint

    @property
    def name(self) -> str:
        """The leaf's id: its taxonomy-relative directory."""
        return posixpath.dirname(self.path)

    @property
    def contexts(self) -> tuple[str, ...]:
        """Knowledge: the distinct seed contexts, in file order."""
        return tuple(dict.fromkeys(e.context for e in self.examples if e.context is not None))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def build_leaf(doc: Document, file: str, content: bytes, attribution: str | None = None, text: str = "") -> Leaf:
    """A Leaf from a parsed document; tolerant of schema errors (the checks report those)."""
    path, kind = taxonomy_path(file)
    data = doc.data if isinstance(doc.data, dict) else {}
    examples: list[Example] = []
    seeds = data.get("seed_examples")
    for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
        if not isinstance(seed, dict):
            continue
        base = ("seed_examples", i)
        context = _text(seed.get("context"))
        if kind is Kind.KNOWLEDGE:
            qnas = seed.get("questions_and_answers")
            for j, qna in enumerate(qnas if isinstance(qnas, list) else []):
                if isinstance(qna, dict):
                    at = base + ("questions_and_answers", j)
                    examples.append(Example(
                        _text(qna.get("question")) or "", _text(qna.get("answer")) or "", context,
                        doc.pos(at + ("question",)), doc.pos(at + ("answer",)), i,
                    ))
        else:
            examples.append(Example(
                _text(seed.get("question")) or "", _text(seed.get("answer")) or "", context,
                doc.pos(base + ("question",)), doc.pos(base + ("answer",)),
            ))
    document = data.get("document")
    return Leaf(
        file=file,
        path=path,
        kind=kind,
        grounded=bool(kind and kind.is_skill and "grounded" in path.split("/")[1:-1]),
        version=data.get("version"),
        examples=tuple(examples),
        created_by=_text(data.get("created_by")),
        task_description=_text(data.get("task_description")),
        domain=_text(data.get("domain")),
        document_outline=_text(data.get("document_outline")),
        document=document if isinstance(document, dict) else None,
        attribution=attribution,
        blob_sha=git_blob_sha(content),
        doc=doc,
        text=text,
    )
