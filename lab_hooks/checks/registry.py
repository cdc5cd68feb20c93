"""Rule codes, thresholds and checks register themselves here.

A check is a plain function. Per-leaf checks take `(leaf, ctx)`; taxonomy-wide
checks take `(leaves, ctx)` once per run, so a check that compares the leaves
being validated against every leaf under the taxonomy root (`ctx.leaf_stats()`
lists them) pays for that once. Both yield `Finding`s (made with `Rule.at`) and,
for the JSON output, `Metric`s. A stage adds checks by appending its module to
`CHECK_MODULES`; the CLI never changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, Union

from lab_hooks.checks.findings import ERROR, SEVERITIES, WARNING, Finding, Metric

if TYPE_CHECKING:
    from lab_hooks.checks.context import Context
    from lab_hooks.taxonomy.leaf import Leaf

CHECK_MODULES = (
    "lab_hooks.checks.schema",
    "lab_hooks.checks.lint",
    "lab_hooks.checks.paths",
    "lab_hooks.checks.content",
    "lab_hooks.checks.duplicates",
    "lab_hooks.checks.semantic",
)

Result = Iterable[Union[Finding, Metric]]
LeafCheck = Callable[["Leaf", "Context"], Result]
TaxonomyCheck = Callable[[Sequence["Leaf"], "Context"], Result]


@dataclass(frozen=True)
class Rule:
    code: str  # LH123, stable forever
    name: str  # short slug, e.g. trailing-spaces
    severity: str  # default; a taxonomy repo's config may change it
    summary: str  # one line for the README's table
    # About the leaf as a whole (its version, folder, attribution), not one of its
    # lines: an edit anywhere in the leaf does not make such a finding new (`--base`).
    leaf_level: bool = False

    def at(self, file: str, pos: tuple[int, int], message: str, subject: str = "") -> Finding:
        return Finding(file, pos[0], pos[1], self.code, self.severity, message, subject)


@dataclass(frozen=True)
class Threshold:
    name: str
    default: Any
    summary: str


RULES: dict[str, Rule] = {}
THRESHOLDS: dict[str, Threshold] = {}
LEAF_CHECKS: list[LeafCheck] = []
TAXONOMY_CHECKS: list[TaxonomyCheck] = []


def rule(code: str, name: str, severity: str, summary: str, leaf_level: bool = False) -> Rule:
    """Declare a rule code; codes are unique and never reused."""
    assert severity in (ERROR, WARNING) and code not in RULES, code
    RULES[code] = Rule(code, name, severity, summary, leaf_level)
    return RULES[code]


def threshold(name: str, default: Any, summary: str) -> str:
    """Declare a configurable threshold; checks read it with `ctx.threshold(name)`."""
    THRESHOLDS.setdefault(name, Threshold(name, default, summary))
    return name


def leaf_check(fn: LeafCheck) -> LeafCheck:
    LEAF_CHECKS.append(fn)
    return fn


def taxonomy_check(fn: TaxonomyCheck) -> TaxonomyCheck:
    TAXONOMY_CHECKS.append(fn)
    return fn


def load_checks() -> None:
    """Import every check module once, registering its rules and checks."""
    for module in CHECK_MODULES:
        importlib.import_module(module)


# Codes for files that cannot be read or parsed at all (raised as LeafError by
# lab_hooks.taxonomy.load): declared here so the README table lists them.
UNREADABLE = rule("LH001", "unreadable", ERROR, "file cannot be read: missing, a symlink, not a regular file, or over 1 MB")
ENCODING = rule("LH002", "encoding", ERROR, "not UTF-8 text (binary data or an invalid byte)")
YAML_SYNTAX = rule("LH003", "yaml-syntax", ERROR, "not valid YAML (syntax, unknown tag, alias bomb, nesting over 100 levels, several documents)")
EMPTY = rule("LH004", "empty", ERROR, "the file holds no YAML document (InstructLab lets it pass)")
NOT_MAPPING = rule("LH005", "not-mapping", ERROR, "the top level is not a mapping of keys to values")
assert {r.severity for r in RULES.values()} <= set(SEVERITIES)
