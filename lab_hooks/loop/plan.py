"""The plan stage: which leaves the PR changes and how (one ChangeSet, lab_hooks.diff)."""

from __future__ import annotations

from dataclasses import dataclass

from lab_hooks.diff import ChangeSet


@dataclass(frozen=True)
class Plan:
    changes: ChangeSet
    cached = False

    def fields(self) -> dict:
        c = self.changes
        return {"base": {"sha": c.base}, "head": {"sha": c.head},
                "changed_leaves": [{"path": x.path, "change": x.status, "kind": x.kind.value if x.kind else None,
                                    "blob_sha": x.blob_sha, "old_path": x.old_path} for x in c.leaves],
                "skipped": [{"path": s.path, "reason": s.reason} for s in c.skipped]}

    def problem(self) -> None:
        return None


def plan(repo: str, base: str, head: str) -> Plan:
    from lab_hooks.diff import diff_taxonomy

    return Plan(diff_taxonomy(repo, base, head))
