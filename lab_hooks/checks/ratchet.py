"""Only what a change adds is an error: `validate --base REF` and the baseline file.

A finding is new, and stays an error, when its leaf did not exist at the base,
when it is about a line the change wrote, or when its identity (leaf, rule,
subject; see `Finding.identity`) occurs more often now than at the base. Every
other error was there before: it is still listed, as a warning marked
"pre-existing". The base's findings come from running the same checks on the
base's version of each changed leaf; a renamed leaf is checked under its new
name, so its findings carry across the rename.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

from lab_hooks.checks.config import Config
from lab_hooks.checks.engine import Report, check_leaves, load_for_check, taxonomy_name
from lab_hooks.checks.findings import PRE_EXISTING, WARNING, Finding
from lab_hooks.checks.gitbase import BaseLeaf, GitBase, changed_lines, read_base
from lab_hooks.checks.registry import RULES
from lab_hooks.taxonomy.load import LeafError, read_attribution, read_bounded

Identity = tuple[str, str, str]


def let_through(findings: list[Finding], indexes: Iterable[int], known: Counter, leaf: str, note: str,
                is_new: Callable[[Finding], bool] = lambda f: False) -> None:
    """Turn the errors among `findings[indexes]` (one leaf's) that `known` accounts for
    into warnings marked `note`. Each known identity covers as many findings as it
    counts, in file order; one that `is_new` says a change wrote is never covered."""
    for i in sorted(indexes, key=lambda i: findings[i][1:3]):
        finding = findings[i]
        if is_new(finding):
            continue
        identity = finding.identity(leaf)
        if known[identity] > 0:
            known[identity] -= 1
            if finding.is_error:
                findings[i] = finding._replace(severity=WARNING, note=note)


def by_file(findings: Sequence[Finding]) -> dict[str, list[int]]:
    """Indexes of the findings, grouped by file."""
    out: dict[str, list[int]] = {}
    for i, finding in enumerate(findings):
        out.setdefault(finding.file, []).append(i)
    return out


def base_states(base: GitBase, files: Sequence[str], root: str | Path) -> dict[str, tuple[bytes, BaseLeaf]]:
    """Each readable checked file's bytes now and its state at the base."""
    now: dict[str, tuple[bytes, str | None]] = {}
    for file in files:
        try:
            now[file] = (read_bounded(Path(file)), read_attribution(Path(file)))
        except LeafError:
            continue  # unreadable now: its finding is new
    states = read_base(base, now, str(root))
    return {file: (now[file][0], state) for file, state in states.items()}


def mark_pre_existing(report: Report, root: str | Path, config: Config,
                      states: dict[str, tuple[bytes, BaseLeaf]]) -> None:
    """Let the report's errors that the base already had through as "pre-existing" warnings."""
    changed = {f: s for f, (_, s) in states.items() if s.status in ("modified", "renamed")}
    before = _base_findings(changed, root, config)
    for file, indexes in by_file(report.findings).items():
        content, state = states.get(file, (b"", BaseLeaf("added")))
        if state.status == "added":
            continue
        leaf = taxonomy_name(file, root)
        if state.status == "unchanged":
            known = Counter(report.findings[i].identity(leaf) for i in indexes)  # all of them
            let_through(report.findings, indexes, known, leaf, PRE_EXISTING)
            continue
        known = Counter(f.identity(leaf) for f in before.get(file, ()))
        written = changed_lines(state.content or b"", content)
        let_through(report.findings, indexes, known, leaf, PRE_EXISTING, lambda f: _on(f, written))


def _on(finding: Finding, lines: set[int]) -> bool:
    """Whether a finding is about one of `lines`. Findings about the whole leaf are not,
    nor those at 1:1, the position of a finding that has no better one (a missing key)."""
    return finding.line in lines and finding[1:3] != (1, 1) and not RULES[finding.code].leaf_level


def _base_findings(changed: dict[str, BaseLeaf], root: str | Path, config: Config) -> dict[str, list[Finding]]:
    """The findings of the base's version of each changed leaf (file now -> findings).

    Each is checked where it was (a renamed leaf at its old path, so that a finding
    about the path, such as a folder name, is new after a rename into a bad one)."""
    if not changed:
        return {}
    leaves, unreadable = [], []
    now = {state.old_file: file for file, state in changed.items()}
    for old_file, file in now.items():
        state = changed[file]
        try:
            leaves.append(load_for_check(old_file, Path(root), state.content or b"", state.attribution))
        except LeafError as exc:
            unreadable.append(RULES[exc.code].at(old_file, exc.pos, exc.message))
    report = check_leaves(leaves, unreadable, root, config, files=list(now))
    return {now[old]: [report.findings[i] for i in indexes]
            for old, indexes in by_file(report.findings).items() if old in now}
