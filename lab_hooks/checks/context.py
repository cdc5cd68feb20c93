"""What a check may look at beyond its leaf: the taxonomy root, the config,
the other leaves being checked, and (lazily, once per run) every leaf under the root."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lab_hooks.checks.config import Config
from lab_hooks.taxonomy.leaf import Leaf
from lab_hooks.taxonomy.load import LeafError, load_leaf_file


@dataclass
class Context:
    root: Path
    config: Config = field(default_factory=Config)
    checked: list[Leaf] = field(default_factory=list)  # the leaves of this run that parsed
    _leaf_files: dict[str, Path] | None = field(default=None, repr=False)
    _leaves: dict[str, Leaf] | None = field(default=None, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def threshold(self, name: str) -> Any:
        return self.config.threshold(name)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per run and shared by every call of a check."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def leaf_files(self) -> dict[str, Path]:
        """Taxonomy path -> file, for every leaf file under the root (not parsed)."""
        if self._leaf_files is None:
            self._leaf_files = {rel: self.root / rel for rel in sorted(self.leaf_stats())}
        return self._leaf_files

    def leaf_stats(self) -> dict[str, tuple[int, int]]:
        """Taxonomy path -> (size, mtime_ns) of every leaf file under the root: one
        scandir walk per run, shared by every check (a hook runs it on each commit)."""
        from lab_hooks.checks.seedindex import scan

        return self.memo("leaf_stats", lambda: scan(self.root))

    def taxonomy_leaves(self) -> dict[str, Leaf]:
        """Taxonomy path -> Leaf for every parseable leaf under the root; the
        leaves being checked replace their on-disk versions."""
        if self._leaves is None:
            self._leaves = {}
            for path in self.leaf_files().values():
                try:
                    leaf = load_leaf_file(path, self.root)
                except LeafError:
                    continue  # reported when that file itself is checked
                self._leaves[leaf.path] = leaf
            self._leaves.update({leaf.path: leaf for leaf in self.checked})
        return self._leaves
