"""The validate stage: the PR's changed leaves through the validator, with the base side's rules.

The PR's content is data: leaves are read from git objects by sha and written as
plain files into a private folder only so the validator can read them; nothing of
the PR is checked out, imported or executed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lab_hooks.loop.run import StageFailed
from lab_hooks.report.summary import findings_as_dicts

CONFIG_FILES = (".lab-hooks.yaml", "pyproject.toml")  # where a taxonomy repo's rules live
MAX_MATERIALIZED_BYTES = 512 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024


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


def validate(run, diff, workdir: Path):
    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files
    from lab_hooks.checks.registry import load_checks

    root = materialize(diff.repo, diff.head, diff.base, workdir / "taxonomy")
    files = [str(root / c.path) for c in diff.leaves if c.status != "deleted"]
    load_checks()
    report = check_files(files, root, load_config(root))
    findings = findings_as_dicts(report.findings)
    for f in findings:  # back to repository-relative paths for the comment's links
        f["file"] = os.path.relpath(f["file"], root) if os.path.isabs(f["file"]) else f["file"]
    run.data["validation"] = {"errors": report.errors, "warnings": len(findings) - report.errors}
    errors = [f for f in findings if f.get("severity") == "error"]
    if errors or report.internal_errors:
        raise StageFailed(f"{len(errors)} error(s) in the changed leaves; fix them and push again"
                          + (f" ({len(report.internal_errors)} internal error(s))" if report.internal_errors else ""),
                          errors)
    leaves = []
    for change in diff.leaves:
        if change.status != "deleted":
            leaves.append(diff.read_leaf(change))
    return root, leaves
