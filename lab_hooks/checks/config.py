"""Per-taxonomy-repo settings: rule severities and thresholds.

Read from `.lab-hooks.yaml` at the taxonomy root, else `[tool.lab-hooks]` in its
`pyproject.toml`:

    rules:            # code or name -> error | warning | off
      LH402: off
      trailing-spaces: warning
    thresholds:
      max_seed_chars: 6000
    document_hosts:   # where knowledge documents may be fetched from (replaces the default list)
      - github.com
      - git.example.org
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_hooks.checks.findings import SEVERITIES
from lab_hooks.checks.registry import RULES, THRESHOLDS, Rule
from lab_hooks.taxonomy.documents import DEFAULT_DOCUMENT_HOSTS

CONFIG_FILE = ".lab-hooks.yaml"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass
class Config:
    severities: dict[str, str] = field(default_factory=dict)  # code -> error|warning|off
    thresholds: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    document_hosts: tuple[str, ...] = DEFAULT_DOCUMENT_HOSTS
    semantic: bool = False  # `--semantic`: also run the checks that load an embedding model

    def severity(self, rule: Rule) -> str:
        return self.severities.get(rule.code, rule.severity)

    def threshold(self, name: str) -> Any:
        return self.thresholds.get(name, THRESHOLDS[name].default)


def _settings(root: Path) -> tuple[dict, str | None]:
    path = root / CONFIG_FILE
    if path.is_file() or path.is_symlink():
        from lab_hooks.taxonomy.load import LeafError, decode, read_bounded
        from lab_hooks.taxonomy.yamlmarks import YamlError, load

        try:
            data = load(decode(read_bounded(path))).data
        except (LeafError, YamlError) as exc:
            line, col = exc.pos
            raise ConfigError(f"{path}:{line}:{col}: cannot read: {exc.message}") from None
        return (data or {}), str(path)
    path = root / "pyproject.toml"
    if path.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10: no TOML reader in the standard library
            return {}, None
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        section = data.get("tool", {}).get("lab-hooks")
        if section is not None:
            return section, f"{path} [tool.lab-hooks]"
    return {}, None


def _document_hosts(data: dict, where: str) -> tuple[str, ...]:
    hosts = data.get("document_hosts", DEFAULT_DOCUMENT_HOSTS)
    if not isinstance(hosts, (list, tuple)) or not all(
            isinstance(h, str) and re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", h) for h in hosts):
        raise ConfigError(f"{where}: document_hosts must be a list of host names, e.g. [github.com]")
    return tuple(h.lower() for h in hosts)


def load_document_hosts(root: str | Path) -> tuple[str, ...]:
    """Only the document hosts of the taxonomy at `root` (what fetching documents needs)."""
    data, source = _settings(Path(root))
    return _document_hosts(data if isinstance(data, dict) else {}, source or "config")


def load_config(root: str | Path) -> Config:
    """The taxonomy repo's settings, checked against the registered rules and thresholds."""
    data, source = _settings(Path(root))
    where = source or "config"
    if not isinstance(data, dict) or set(data) - {"rules", "thresholds", "document_hosts"}:
        raise ConfigError(f"{where}: expected a mapping with only 'rules', 'thresholds' and 'document_hosts'")
    by_name = {r.name: r.code for r in RULES.values()}
    severities = {}
    for key, value in (data.get("rules") or {}).items():
        code = by_name.get(key, key)
        if code not in RULES:
            raise ConfigError(f"{where}: unknown rule {key!r}")
        value = "off" if value is False else value
        if value not in SEVERITIES:
            raise ConfigError(f"{where}: rule {key}: severity must be one of {', '.join(SEVERITIES)}, not {value!r}")
        severities[code] = value
    thresholds = {}
    for key, value in (data.get("thresholds") or {}).items():
        if key not in THRESHOLDS:
            raise ConfigError(f"{where}: unknown threshold {key!r}; known: {', '.join(sorted(THRESHOLDS))}")
        default = THRESHOLDS[key].default
        if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
            raise ConfigError(f"{where}: threshold {key} must be a {type(default).__name__}, not {value!r}")
        thresholds[key] = value
    return Config(severities, thresholds, source, _document_hosts(data, where))
