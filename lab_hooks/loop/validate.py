"""The validate stage: the PR's changed leaves through the validator, with the base side's rules.

Only what the PR adds is an error, as in the Action's validate job (`validate --base`):
an error the base's version of a leaf already had, or that the base's baseline lists,
is reported as a warning. The PR's content is data: leaves are read from git objects by sha and written as
plain files into a private folder only so the validator can read them; nothing of
the PR is checked out, imported or executed. A leaf file that is a symlink or a
submodule is never written nor read: it is an LH001 error, like the hook reports it.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from lab_hooks.diff import ChangeSet
from lab_hooks.errors import InputError, one_line
from lab_hooks.loop.run import StageFailed
from lab_hooks.report.summary import findings_as_dicts
from lab_hooks.taxonomy.leaf import Leaf

# Where a taxonomy repo's rules and its baseline of known errors live: read from the base side.
CONFIG_FILES = (".lab-hooks.yaml", "pyproject.toml", ".lab-hooks-baseline.json")
MAX_MATERIALIZED_BYTES = 512 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Validated:
    root: Path  # the head tree as plain files (the base side's config)
    leaves: tuple[Leaf, ...]  # the changed leaves with a head side, parsed
    errors: int
    warnings: int
    cached = False

    def fields(self) -> dict:
        return {"validation": {"errors": self.errors, "warnings": self.warnings}}

    def problem(self) -> None:
        return None


def materialize(repo, head_sha: str, base_sha: str, dest: Path) -> Path:
    """The head tree's regular files under `dest`, as plain data; the base side's config.

    Symlinks and submodules are not written (the diff reports them); a file over
    the size limit is skipped; the total is bounded. Only the validator reads these.
    """
    total = 0
    for item in repo.commit(head_sha).tree.traverse():
        if item.type != "blob" or not stat.S_ISREG(item.mode) or item.size > MAX_FILE_BYTES:
            continue
        if item.path in CONFIG_FILES:
            continue
        total += item.size
        if total > MAX_MATERIALIZED_BYTES:
            raise StageFailed(f"the PR's tree is over {MAX_MATERIALIZED_BYTES // 2**20} MiB")
        target = dest / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.data_stream.read())
    base_tree = repo.commit(base_sha).tree
    for name in CONFIG_FILES:  # the rules are the base branch's, not what the PR says they are
        try:
            blob = base_tree / name
        except KeyError:
            continue
        if blob.type == "blob" and stat.S_ISREG(blob.mode):
            (dest / name).write_bytes(blob.data_stream.read())
    return dest


def validate(changes: ChangeSet, workdir: Path) -> Validated:
    from lab_hooks.checks import baseline
    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files
    from lab_hooks.checks.ratchet import mark_pre_existing
    from lab_hooks.checks.registry import load_checks

    root = materialize(changes.repo, changes.head, changes.base, workdir / "taxonomy")
    files = [str(root / c.path) for c in changes.present]
    load_checks()
    config = _from_base(changes, root, load_config)
    report = check_files(files, root, config)
    known = _from_base(changes, root, baseline.read)
    if known is not None:
        baseline.apply(report, root, known)
    mark_pre_existing(report, root, config, _base_states(changes, root))
    findings = [{"file": s.path, "line": 1, "col": 1, "severity": "error", "code": "LH001",
                 "message": s.reason} for s in changes.skipped_leaves]
    for f in findings_as_dicts(report.findings):  # back to repository-relative paths for the comment's links
        f["file"] = os.path.relpath(f["file"], root) if os.path.isabs(f["file"]) else f["file"]
        findings.append(f)
    errors = [f for f in findings if f.get("severity") == "error"]
    counts = {"validation": {"errors": len(errors), "warnings": len(findings) - len(errors)}}
    if errors or report.internal_errors:
        raise StageFailed(f"{len(errors)} error(s) in the changed leaves; fix them and push again"
                          + (f" ({len(report.internal_errors)} internal error(s))" if report.internal_errors else ""),
                          errors, counts)
    return Validated(root, tuple(changes.read_all()), len(errors), len(findings) - len(errors))


def _from_base(changes: ChangeSet, root: Path, read):
    """`read(root)` of a file the base branch holds (the rules, the baseline): an error in it
    names the file at the base commit (as `validate --base` does), not the folder it was
    written to for this run."""
    try:
        return read(root)
    except InputError as exc:
        where = re.escape(f"{root}{os.sep}") + r"([^:]+)"
        raise InputError(re.sub(where, lambda m: f"{m.group(1)} at {(changes.base or '')[:12]}", one_line(exc),
                                count=1)) from None


def _base_states(changes: ChangeSet, root: Path) -> dict:
    """Each changed leaf's bytes as materialized and its base side, for the ratchet."""
    from lab_hooks.checks.gitbase import ATTRIBUTION, BaseLeaf
    from lab_hooks.taxonomy.load import LeafError

    tree = changes.repo.commit(changes.base).tree if changes.base else None
    states = {}
    for change in changes.present:
        file = str(root / change.path)
        try:
            now = (root / change.path).read_bytes()
        except OSError:
            continue  # not materialized (too large): its finding is new
        if tree is None or change.old_path is None:
            states[file] = (now, BaseLeaf("added"))
            continue
        try:
            old = changes.base_bytes(change)
            blob = tree / posixpath.join(posixpath.dirname(change.old_path), ATTRIBUTION)
            attribution = blob.data_stream.read().decode("utf-8", "replace").removeprefix("\ufeff")
        except LeafError:
            old, attribution = None, None
        except KeyError:
            attribution = None
        states[file] = (now, BaseLeaf(change.status, str(root / change.old_path), old, attribution))
    return states
