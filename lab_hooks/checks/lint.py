"""Lint equal to InstructLab's yamllint setup (`relaxed`, line-length off), in
process: its errors (trailing spaces, final newline, line endings, duplicate
keys) are errors here, its indentation and blank-line rules warnings; tabs in
indentation are an error (YAML forbids them; yamllint only reports the parse
failure they cause, when they do)."""

from __future__ import annotations

import re
from typing import Iterator

from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import ERROR, WARNING, Finding
from lab_hooks.checks.registry import leaf_check, rule
from lab_hooks.taxonomy.leaf import Leaf

TRAILING_SPACES = rule("LH201", "trailing-spaces", ERROR, "spaces or tabs at the end of a line")
FINAL_NEWLINE = rule("LH202", "final-newline", ERROR, "the file does not end with a newline")
LINE_ENDINGS = rule("LH203", "line-endings", ERROR, "CRLF or CR line endings (use LF)")
DUPLICATE_KEY = rule("LH204", "duplicate-key", ERROR, "a key appears twice in one mapping (YAML keeps only the last)")
TABS = rule("LH205", "tabs", ERROR, "a tab in indentation")
INDENTATION = rule("LH206", "indentation", WARNING, "indentation not a consistent width, or sequences indented inconsistently")
EMPTY_LINES = rule("LH207", "empty-lines", WARNING, "blank lines at the start or end of the file, or more than 2 in a row")


_TAB_INDENT = re.compile(r"^ *\t", re.M)


def _line_col(text: str, at: int) -> tuple[int, int]:
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


@leaf_check
def check_lines(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    text = leaf.text
    if "\r" in text:
        at = text.index("\r")
        yield LINE_ENDINGS.at(leaf.file, _line_col(text, at),
                              "CRLF line endings" if text[at + 1:at + 2] == "\n" else "CR line ending")
    if text and not text.endswith("\n"):
        yield FINAL_NEWLINE.at(leaf.file, _line_col(text, len(text)), "no newline at end of file")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    blank_run = 0
    for n, line in enumerate(lines, 1):
        if line and line[-1] in " \t\r":
            content = line.rstrip("\r")
            stripped = content.rstrip(" \t")
            if stripped != content:
                yield TRAILING_SPACES.at(leaf.file, (n, len(stripped) + 1), "trailing spaces", subject=stripped.strip())
            line = stripped
        if line:
            if blank_run:
                yield from _blank_run(leaf, n - blank_run, blank_run, at_end=False)
                blank_run = 0
        else:
            blank_run += 1
    if blank_run:
        yield from _blank_run(leaf, len(lines) - blank_run + 1, blank_run, at_end=True)
    if "\t" in text:
        blocks = {n for first, last in leaf.doc.block_scalars for n in range(first, last + 1)}
        for match in _TAB_INDENT.finditer(text):
            line_no, col = _line_col(text, match.end() - 1)
            if line_no not in blocks:
                yield TABS.at(leaf.file, (line_no, col), "tab in indentation; use spaces")


def _blank_run(leaf: Leaf, first: int, count: int, at_end: bool) -> Iterator[Finding]:
    """yamllint's empty-lines rule as InstructLab sets it: no blank line at the
    start or the end of the file, at most 2 in a row elsewhere."""
    lines = f"{count} blank line{'s' * (count > 1)}"
    if first == 1:
        yield EMPTY_LINES.at(leaf.file, (1, 1), f"{lines} at the start of the file")
    elif at_end:
        yield EMPTY_LINES.at(leaf.file, (first, 1), f"{lines} at the end of the file")
    elif count > 2:
        yield EMPTY_LINES.at(leaf.file, (first + 2, 1), f"{lines} in a row (at most 2)")


@leaf_check
def check_duplicate_keys(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    for path, first, again in leaf.doc.duplicate_keys:
        yield DUPLICATE_KEY.at(leaf.file, again, f"duplicate key {path[-1]!r} (first at line {first[0]}); "
                                                 "YAML keeps only this one", subject=repr(path))


@leaf_check
def check_indentation(leaf: Leaf, ctx: Context) -> Iterator[Finding]:
    """One indentation width for the file, and block sequences under keys either
    all indented or all not (yamllint's `spaces: consistent`, `indent-sequences: consistent`)."""
    cols = {path: (is_map, pos, flow) for path, is_map, pos, flow in leaf.doc.collections}
    width = sequences_indented = None
    for path, (is_map, (line, col), flow) in cols.items():
        if flow or not path:
            continue
        parent = cols.get(path[:-1])
        if parent is None or not parent[0] or parent[2]:
            continue  # items of a sequence sit after "- "; flow parents have no indentation
        delta = col - parent[1][1]
        if not is_map:
            indented = delta > 0
            if sequences_indented is None:
                sequences_indented = indented
            elif indented != sequences_indented:
                yield INDENTATION.at(leaf.file, (line, col), "sequence " + (
                    "indented, but earlier sequences are not" if indented else "not indented, but earlier sequences are"))
                continue
            if not indented:
                continue
        if width is None:
            width = delta
        elif delta != width:
            yield INDENTATION.at(leaf.file, (line, col), f"indented {delta} spaces, the rest of the file uses {width}")
