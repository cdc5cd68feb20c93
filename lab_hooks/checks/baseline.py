"""`lab-hooks baseline`: record today's errors so that only new ones block.

`.lab-hooks-baseline.json` at the taxonomy root lists each error of the leaves
it was written for by leaf, rule and a fingerprint of the finding's subject
(`Finding.identity`: no line numbers, so edits elsewhere do not disturb it),
with a count. `lab-hooks validate` reads it when it is there: an error it
lists is reported as a warning marked "in baseline"; entries of the checked
leaves that no longer occur are reported, and `lab-hooks baseline` run again
drops them, so the file only shrinks as problems are fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import Path

from lab_hooks.checks.engine import Report, taxonomy_name
from lab_hooks.checks.findings import BASELINED, WARNING, Finding
from lab_hooks.errors import InputError
from lab_hooks.flags import Parser, command

BASELINE_FILE = ".lab-hooks-baseline.json"
FORMAT = 1
Key = tuple[str, str, str]  # leaf, rule, fingerprint


class BaselineError(InputError):
    """A baseline file that cannot be used; the message names it."""


def fingerprint(finding: Finding, leaf: str) -> Key:
    """(leaf, rule, 16 hex digits of the subject's sha256): stable across edits elsewhere."""
    _, code, subject = finding.identity(leaf)
    return leaf, code, hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def read(root: str | Path, files=None) -> Counter | None:
    """The baseline at the taxonomy root (key -> count), None when there is none.
    `files` (a `config.Files`) is where to read it, default: `root` on disk."""
    from lab_hooks.checks.config import ConfigError, Files

    files = files or Files(root)
    try:
        content = files.read(BASELINE_FILE)
    except ConfigError as exc:
        raise BaselineError(str(exc)) from None
    if content is None:
        return None
    try:
        data = json.loads(content.decode("utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT} (run `lab-hooks baseline` again)")
        return Counter({(e["leaf"], e["code"], e["fingerprint"]): int(e.get("count", 1)) for e in data["findings"]})
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"{files.where(BASELINE_FILE)}: cannot read: {exc}") from None


def write(root: str | Path, known: Counter) -> Path:
    """The baseline file, one entry a line (a fixed problem is a one-line diff)."""
    path = Path(root) / BASELINE_FILE
    entries = ",\n".join(json.dumps({"leaf": leaf, "code": code, "fingerprint": fp, "count": n}, ensure_ascii=False)
                         for (leaf, code, fp), n in sorted(known.items()) if n > 0)
    about = json.dumps("errors that lab-hooks validate lets through as warnings; `lab-hooks baseline` rewrites "
                       "this file, and fixed problems drop out")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f'{{"about": {about},\n"format": {FORMAT},\n"findings": [\n{entries}\n]}}\n', encoding="utf-8")
    os.replace(tmp, path)
    return path


def recorded(report: Report, root: str | Path) -> Counter:
    """The baseline of a report: each error's key, counted."""
    return Counter(fingerprint(f, taxonomy_name(f.file, root)) for f in report.findings if f.is_error)


def apply(report: Report, root: str | Path, known: Counter) -> int:
    """Let the report's errors that the baseline lists through as warnings marked "in
    baseline" (each entry covers `count` errors, in file order); returns how many
    entries of the checked leaves no longer occur."""
    leaves = {file: taxonomy_name(file, root) for file in report.files}
    budget = Counter({key: n for key, n in known.items() if key[0] in leaves.values()})
    findings = report.findings
    for i in sorted(range(len(findings)), key=lambda i: findings[i][:3]):
        finding = findings[i]
        if not finding.is_error:
            continue
        key = fingerprint(finding, leaves.get(finding.file) or taxonomy_name(finding.file, root))
        if budget[key] > 0:
            budget[key] -= 1
            findings[i] = finding._replace(severity=WARNING, note=BASELINED)
    return sum(budget.values())


@command("lab-hooks baseline")
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="lab-hooks baseline",
        description=f"Record the errors of the taxonomy's leaves in {BASELINE_FILE} at its root: "
                    "`lab-hooks validate` then reports them as warnings, and only new errors block.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="leaves or folders to record (default: the whole taxonomy under --root)")
    parser.add_argument("--root", default=None, help="the taxonomy root (default: the folder holding the "
                                                     "paths' compositional_skills/, ... or the current one)")
    args = parser.parse_args(argv)
    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files, expand, find_root
    from lab_hooks.checks.registry import load_checks

    if args.root is not None and not os.path.isdir(args.root):
        parser.error(f"--root {args.root}: not a directory")
    for path in args.paths:  # a typo must not record an empty baseline
        if not os.path.lexists(path):
            raise InputError(f"{path}: no such file or directory")
    files = expand(args.paths or [args.root or "."])
    root = os.path.relpath(args.root if args.root is not None else find_root(files))
    load_checks()
    config = load_config(root)  # a bad config or baseline: an InputError, one line, exit 1
    before = read(root) or Counter()
    report = check_files(files, root, config)
    if report.internal_errors:
        for problem in report.internal_errors:
            print(f"lab-hooks baseline: internal error: {problem}", file=sys.stderr)
        return 2
    now = recorded(report, root)
    checked = {taxonomy_name(file, root) for file in files}
    kept = Counter({key: n for key, n in before.items() if key[0] not in checked})  # leaves not checked now
    dropped = sum((Counter({k: n for k, n in before.items() if k[0] in checked}) - now).values())
    added = sum((now - before).values())
    path = write(root, kept + now)
    print(f"{path}: {sum((kept + now).values()):,} errors recorded ({added:,} new, {dropped:,} no longer "
          f"occur and were dropped) from {len(files):,} lea{'ves' if len(files) != 1 else 'f'}")
    return 0
