"""What a check may look at beyond its leaf: the taxonomy root, the config,
the other leaves being checked, and (lazily, once per run) the size and mtime
of every leaf file under the root."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lab_hooks.checks.config import Config
from lab_hooks.taxonomy.leaf import Leaf


@dataclass
class Context:
    root: Path
    config: Config = field(default_factory=Config)
    checked: list[Leaf] = field(default_factory=list)  # the leaves of this run that parsed
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def threshold(self, name: str) -> Any:
        return self.config.threshold(name)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per run and shared by every call of a check."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def leaf_stats(self) -> dict[str, tuple[int, int]]:
        """Taxonomy path -> (size, mtime_ns) of every leaf file under the root: one
        scandir walk per run, shared by every check (a hook runs it on each commit)."""
        from lab_hooks.checks.seedindex import scan

        return self.memo("leaf_stats", lambda: scan(self.root))
