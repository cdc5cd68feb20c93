"""What a leaf says: context rules for grounded and freeform skills, the
attribution, knowledge documents, and length budgets."""

from __future__ import annotations

import posixpath
import re
from typing import Iterator

from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import ERROR, WARNING, Finding
from lab_hooks.checks.registry import leaf_check, rule, threshold
from lab_hooks.taxonomy.documents import HEAD, glob_files, local_document_dir, url_problem
from lab_hooks.taxonomy.leaf import Kind, Leaf

GROUNDED_NO_CONTEXT = rule("LH401", "grounded-needs-context", ERROR, "a seed of a grounded skill (under `grounded/`) has no `context`")
FREEFORM_CONTEXT = rule("LH402", "freeform-context", WARNING, "a seed of a freeform skill has a `context` (move the leaf under `grounded/`?)")
NO_ATTRIBUTION = rule("LH403", "attribution-missing", ERROR, "no readable, non-empty `attribution.txt` beside the leaf",
                      leaf_level=True)
ATTRIBUTION_FIELDS = rule("LH404", "attribution-fields", WARNING,
                          "`attribution.txt` does not name the title, link, license and creator", leaf_level=True)
DOCUMENT_REPO = rule("LH405", "document-repo", ERROR, "knowledge `document.repo` is not an https URL nor a folder inside the taxonomy repo")
DOCUMENT_COMMIT = rule("LH406", "document-commit", ERROR, "knowledge `document.commit` is not a full 40-hex commit sha (or `HEAD` for an in-repo document)")
DOCUMENT_PATTERN = rule("LH407", "document-pattern", ERROR, "a `document.patterns` entry is absolute, uses `..`, or matches no file in the taxonomy repo")
DOCUMENT_HOST = rule("LH408", "document-host", ERROR, "knowledge `document.repo` is on a host not in `document_hosts` (an IP address or local name only if listed there)")
SEED_TOO_LONG = rule("LH501", "seed-too-long", ERROR, "question + answer + context of a seed exceed the character budget (`max_seed_chars`)")
CONTEXT_WORDS = rule("LH502", "context-too-long", WARNING, "a knowledge context exceeds `max_context_words` (500) words")
QNA_WORDS = rule("LH503", "qna-too-long", WARNING, "a knowledge question + answer exceed `max_qna_words` (250) words")

MAX_SEED_CHARS = threshold("max_seed_chars", 4948, "characters a seed's question + answer + context may use (InstructLab's old limit)")
MAX_CONTEXT_WORDS = threshold("max_context_words", 500, "words per knowledge context (InstructLab's documented limit)")
MAX_QNA_WORDS = threshold("max_qna_words", 250, "words per knowledge question + answer (InstructLab's documented limit)")

ATTRIBUTION_LABELS = {
    "title": ("title",),
    "link": ("link", "url", "source"),
    "license": ("license", "licence"),
    "creator": ("creator", "author"),
}
_SHA = re.compile(r"[0-9a-fA-F]{40}")


def _seeds(leaf: Leaf) -> list:
    seeds = leaf.doc.data.get("seed_examples")
    return seeds if isinstance(seeds, list) else []


@leaf_check
def check_context_rules(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    if leaf.kind is None or not leaf.kind.is_skill:
        return
    for i, seed in enumerate(_seeds(leaf)):
        if not isinstance(seed, dict):
            continue
        if leaf.grounded and not seed.get("context"):
            yield GROUNDED_NO_CONTEXT.at(leaf.file, leaf.doc.pos(("seed_examples", i)),
                                         f"seed_examples[{i}]: a grounded skill's seed needs a `context`")
        elif not leaf.grounded and "context" in seed:
            yield FREEFORM_CONTEXT.at(leaf.file, leaf.doc.key_marks.get(("seed_examples", i, "context"), (1, 1)),
                                      f"seed_examples[{i}] has a `context` but the skill is freeform; "
                                      "grounded skills live under a `grounded/` folder")


def attribution_labels(text: str) -> set[str]:
    """Which of title/link/license/creator an attribution names as `Label: value` lines."""
    found = set()
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if not sep:
            label, sep, value = line.partition("=")
        if not sep or not value.strip():
            continue
        label = label.strip().lower()
        found |= {field for field, words in ATTRIBUTION_LABELS.items() if any(w in label for w in words)}
    return found


@leaf_check
def check_attribution(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    if leaf.attribution is None or not leaf.attribution.strip():
        problem = "is empty" if leaf.attribution is not None else "is missing (or unreadable)"
        yield NO_ATTRIBUTION.at(leaf.file, (1, 1), f"attribution.txt beside the leaf {problem}; it names the source's "
                                                   "title, link, license and creator")
        return
    named = attribution_labels(leaf.attribution)
    missing = [f for f in ATTRIBUTION_LABELS if f not in named]
    if missing:
        yield ATTRIBUTION_FIELDS.at(leaf.file, (1, 1), f"attribution.txt does not name the {', '.join(missing)} "
                                                       "(lines like 'Title of work: ...', 'Link to work: ...', "
                                                       "'License of the work: ...', 'Creator names: ...')")


@leaf_check
def check_document(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    document = leaf.document
    if leaf.kind is not Kind.KNOWLEDGE or document is None:
        return
    pos = leaf.doc.pos
    repo, commit, patterns = document.get("repo"), document.get("commit"), document.get("patterns")
    local = None
    if isinstance(repo, str) and repo:
        local = local_document_dir(repo, ctx.root)
        if local is None and not re.match(r"https://[^/\s]+", repo):
            yield DOCUMENT_REPO.at(leaf.file, pos(("document", "repo")),
                                   f"document.repo {repo!r}: use an https:// URL or a folder inside the taxonomy repo")
            return
        problem = None if local is not None else url_problem(repo, ctx.config.document_hosts)
        if problem:
            yield DOCUMENT_HOST.at(leaf.file, pos(("document", "repo")), f"document.repo {repo!r} {problem}")
        if isinstance(commit, str) and commit and not _SHA.fullmatch(commit) and (local is None or commit != HEAD):
            yield DOCUMENT_COMMIT.at(leaf.file, pos(("document", "commit")),
                                     f"document.commit {commit!r}: give the full 40-character commit sha"
                                     + ("" if local is None else " (or HEAD: the leaf's own commit)"))
    for i, pattern in enumerate(patterns if isinstance(patterns, list) else []):
        if not isinstance(pattern, str) or not pattern:
            continue  # the schema reports it
        at = pos(("document", "patterns", i))
        if pattern.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", pattern):
            yield DOCUMENT_PATTERN.at(leaf.file, at, f"pattern {pattern!r} is absolute; make it relative to the repo root")
        elif ".." in re.split(r"[/\\]", pattern):
            yield DOCUMENT_PATTERN.at(leaf.file, at, f"pattern {pattern!r} uses '..'; patterns stay inside the repo")
        elif local is not None and not glob_files(local, pattern):
            yield DOCUMENT_PATTERN.at(leaf.file, at, f"pattern {pattern!r} matches no file under {posixpath.normpath(repo)}/")


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


@leaf_check
def check_lengths(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    max_chars = ctx.threshold(MAX_SEED_CHARS)
    for example in leaf.examples:
        size = len(example.question) + len(example.answer) + len(example.context or "")
        if size > max_chars:
            yield SEED_TOO_LONG.at(leaf.file, example.pos, f"question + answer + context are {size:,} characters, "
                                                           f"over the {max_chars:,} budget (max_seed_chars)",
                                   " ".join(example.question.split()))
    if leaf.kind is not Kind.KNOWLEDGE:
        return
    max_context, max_qna = ctx.threshold(MAX_CONTEXT_WORDS), ctx.threshold(MAX_QNA_WORDS)
    for i, seed in enumerate(_seeds(leaf)):
        if isinstance(seed, dict) and isinstance(seed.get("context"), str) and _words(seed["context"]) > max_context:
            yield CONTEXT_WORDS.at(leaf.file, leaf.doc.pos(("seed_examples", i, "context")),
                                   f"context of seed_examples[{i}] has {_words(seed['context'])} words, "
                                   f"over {max_context} (max_context_words)")
    for example in leaf.examples:
        words = _words(example.question) + _words(example.answer)
        if words > max_qna:
            yield QNA_WORDS.at(leaf.file, example.pos, f"question + answer have {words} words, over {max_qna} (max_qna_words)")
