"""What checks report, and the three ways `lab-hooks validate` prints it.

A `Finding` is one diagnostic at a file:line:col; a `Metric` is a per-file
figure (e.g. a diversity score) that only the JSON output carries. Keeping the
formatting here, apart from the checks, lets every stage print findings the
same way.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring as _quote  # json's C string encoder (ensure_ascii=False)
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

ERROR, WARNING, OFF = "error", "warning", "off"
SEVERITIES = (ERROR, WARNING, OFF)
FORMATS = ("text", "github", "json")
# Why an error was let through as a warning: it was there before the change
# (`--base`), or the repository's baseline file lists it.
PRE_EXISTING, BASELINED = "pre-existing", "in baseline"
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


class Finding(NamedTuple):
    """A tuple: made, compared and sorted (file, line, col, ...) in C - a whole
    tree's run makes tens of thousands."""

    file: str
    line: int
    col: int
    code: str
    severity: str  # "error" or "warning"
    message: str
    # What the finding is about, in words that stay the same when other lines move
    # (the texts of two near-duplicate seeds, a key's path); "" = the message with its
    # numbers (lines, indexes, scores) left out. See `identity`.
    subject: str = ""
    note: str = ""  # PRE_EXISTING or BASELINED when an error was let through as a warning

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    @property
    def shown(self) -> str:
        """The message as printed: marked when the ratchet or the baseline let it through."""
        return f"[{self.note}] {self.message}" if self.note else self.message

    def identity(self, leaf: str) -> tuple[str, str, str]:
        """(leaf, rule, subject): the same finding before and after an edit elsewhere
        in the leaf, a move of the leaf (`leaf` is the taxonomy path) or a reordering."""
        return leaf, self.code, self.subject or _NUMBERS.sub("#", self.message)

    def text(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity} {self.code} {self.shown}"

    def github(self) -> str:
        """A GitHub Actions workflow command that annotates the line in the PR."""
        props = ",".join(f"{k}={_escape_property(str(v))}" for k, v in
                         (("file", self.file), ("line", self.line), ("col", self.col), ("title", self.code)))
        return f"::{self.severity} {props}::{_escape_data(f'{self.code} {self.shown}')}"


@dataclass(frozen=True)
class Metric:
    """A named per-file figure, reported in `--format json` only."""

    file: str
    name: str
    value: Any


def _escape_data(s: str) -> str:
    # https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def summary_line(findings: Iterable[Finding], files: int) -> str:
    findings = list(findings)
    errors = sum(f.is_error for f in findings)
    warnings = len(findings) - errors
    line = f"{files} file{'s' * (files != 1)} checked: {errors} error{'s' * (errors != 1)}, " \
           f"{warnings} warning{'s' * (warnings != 1)}"
    let_through = {note: sum(f.note == note for f in findings) for note in (PRE_EXISTING, BASELINED)}
    notes = ", ".join(f"{n:,} {note}" for note, n in let_through.items() if n)
    return f"{line} ({notes})" if notes else line


def _json(findings: list[Finding], files: list[str], metrics: Iterable[Metric]) -> str:
    """`json.dumps` of the per-file report, byte for byte, written out: a whole tree's run
    has tens of thousands of findings, and a dict per finding for the encoder costs twice
    as much as formatting each with the C string encoder."""
    entries: dict[str, list[str]] = {f: [] for f in files}
    for f in findings:
        note = f', "note": {_quote(f.note)}' if f.note else ""
        entries.setdefault(f.file, []).append(
            f'{{"line": {f.line}, "col": {f.col}, "code": {_quote(f.code)}, "severity": {_quote(f.severity)}, '
            f'"message": {_quote(f.message)}{note}}}')
    figures: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        entries.setdefault(metric.file, [])
        figures.setdefault(metric.file, {})[metric.name] = metric.value
    errors = sum(f.is_error for f in findings)
    files_json = ", ".join(f'{{"file": {_quote(name)}, "findings": [{", ".join(items)}], '
                           f'"metrics": {json.dumps(figures.get(name, {}), ensure_ascii=False)}}}'
                           for name, items in entries.items())
    return f'{{"files": [{files_json}], "errors": {errors}, "warnings": {len(findings) - errors}}}'


def render(findings: list[Finding], fmt: str, files: list[str], metrics: Iterable[Metric] = ()) -> str:
    """The whole report in one of FORMATS; findings sorted by file, line, col."""
    findings = sorted(findings)
    if fmt == "text":
        return "\n".join(f.text() for f in findings)
    if fmt == "github":
        return "\n".join(f.github() for f in findings)
    if fmt == "json":
        return _json(findings, files, metrics)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
