"""Per-taxonomy-repo settings: a profile, rule severities and thresholds.

Read from `.lab-hooks.yaml` at the taxonomy root, else `[tool.lab-hooks]` in its
`pyproject.toml`:

    profile: instructlab  # the severities InstructLab's validator implies (default: strict)
    rules:                # code or name -> error | warning | off; beats the profile
      LH402: off
      trailing-spaces: warning
    thresholds:
      max_seed_chars: 6000
    document_hosts:       # where knowledge documents may be fetched from (replaces the default list)
      - github.com
      - git.example.org

A profile is a data file in `profiles/` with the same `rules` and `thresholds`.
There a rule may also be `{severity: error, version_1: warning}`: a different
severity for leaves InstructLab reads as version 1 (no `version:`, or 1), for
which it skips yamllint and the attribution check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_hooks.checks.findings import SEVERITIES
from lab_hooks.checks.registry import RULES, THRESHOLDS, Rule
from lab_hooks.errors import InputError
from lab_hooks.taxonomy.documents import DEFAULT_DOCUMENT_HOSTS

CONFIG_FILE = ".lab-hooks.yaml"
PROFILES = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "strict"


class ConfigError(InputError):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass
class Config:
    severities: dict[str, str] = field(default_factory=dict)  # code -> error|warning|off
    thresholds: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    document_hosts: tuple[str, ...] = DEFAULT_DOCUMENT_HOSTS
    semantic: bool = False  # `--semantic`: also run the checks that load an embedding model
    profile: str = DEFAULT_PROFILE
    version_1: dict[str, str] = field(default_factory=dict)  # code -> its severity for version-1 leaves

    def severity(self, rule: Rule, version_1: bool = False) -> str:
        """The rule's severity here; `version_1`: for a leaf InstructLab reads as version 1."""
        if version_1 and rule.code in self.version_1:
            return self.version_1[rule.code]
        return self.severities.get(rule.code, rule.severity)

    def threshold(self, name: str) -> Any:
        return self.thresholds.get(name, THRESHOLDS[name].default)


class Files:
    """The settings files of a taxonomy on disk (`GitBase.files` reads them at a commit)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def read(self, name: str) -> bytes | None:
        """The file's bytes; None when there is no such file."""
        from lab_hooks.taxonomy.load import LeafError, read_bounded

        path = self.root / name
        if not (path.is_file() or path.is_symlink()):
            return None
        try:
            return read_bounded(path)
        except LeafError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.message}") from None

    def where(self, name: str) -> str:
        return str(self.root / name)


def _read_yaml(content: bytes, where: str) -> Any:
    from lab_hooks.taxonomy.load import LeafError, decode
    from lab_hooks.taxonomy.yamlmarks import YamlError, load

    try:
        return load(decode(content)).data
    except (LeafError, YamlError) as exc:
        line, col = exc.pos
        raise ConfigError(f"{where}:{line}:{col}: cannot read: {exc.message}") from None


def _settings(files: Files) -> tuple[dict, str | None]:
    content = files.read(CONFIG_FILE)
    if content is not None:
        return (_read_yaml(content, files.where(CONFIG_FILE)) or {}), files.where(CONFIG_FILE)
    content = files.read("pyproject.toml")
    if content is not None:
        try:
            import tomllib
        except ImportError:  # Python 3.10: no TOML reader in the standard library
            return {}, None
        where = files.where("pyproject.toml")
        try:
            data = tomllib.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read: {exc}") from None
        section = data.get("tool", {}).get("lab-hooks")
        if section is not None:
            return section, f"{where} [tool.lab-hooks]"
    return {}, None


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def _severity(value: Any, where: str, key: str) -> str:
    value = "off" if value is False else value
    if value not in SEVERITIES:
        raise ConfigError(f"{where}: rule {key}: severity must be one of {', '.join(SEVERITIES)}, not {value!r}")
    return value


def _document_hosts(data: dict, where: str) -> tuple[str, ...]:
    hosts = data.get("document_hosts", DEFAULT_DOCUMENT_HOSTS)
    if not isinstance(hosts, (list, tuple)) or not all(
            isinstance(h, str) and re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", h) for h in hosts):
        raise ConfigError(f"{where}: document_hosts must be a list of host names, e.g. [github.com]")
    return tuple(h.lower() for h in hosts)


def load_document_hosts(root: str | Path) -> tuple[str, ...]:
    """Only the document hosts of the taxonomy at `root` (what fetching documents needs)."""
    data, source = _settings(Files(root))
    return _document_hosts(data if isinstance(data, dict) else {}, source or "config")


def _apply(config: Config, data: Any, where: str, conditions: bool) -> None:
    """Lay one layer of settings (a profile, then the repository's) over `config`."""
    keys = {"rules", "thresholds"} | ({"about"} if conditions else {"profile", "document_hosts"})
    if not isinstance(data, dict) or set(data) - keys:
        raise ConfigError(f"{where}: expected a mapping with only {', '.join(repr(k) for k in sorted(keys))}")
    by_name = {r.name: r.code for r in RULES.values()}
    for key, value in (data.get("rules") or {}).items():
        code = by_name.get(key, key)
        if code not in RULES:
            raise ConfigError(f"{where}: unknown rule {key!r}")
        config.version_1.pop(code, None)  # a later layer's plain severity holds for every leaf
        if conditions and isinstance(value, dict):
            if set(value) - {"severity", "version_1"} or "severity" not in value:
                raise ConfigError(f"{where}: rule {key}: expected {{severity: ..., version_1: ...}}")
            config.severities[code] = _severity(value["severity"], where, key)
            if "version_1" in value:
                config.version_1[code] = _severity(value["version_1"], where, key)
        else:
            config.severities[code] = _severity(value, where, key)
    for key, value in (data.get("thresholds") or {}).items():
        if key not in THRESHOLDS:
            raise ConfigError(f"{where}: unknown threshold {key!r}; known: {', '.join(sorted(THRESHOLDS))}")
        default = THRESHOLDS[key].default
        if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
            raise ConfigError(f"{where}: threshold {key} must be a {type(default).__name__}, not {value!r}")
        config.thresholds[key] = value


def load_profile(name: str, config: Config | None = None) -> Config:
    """A shipped profile's settings (over `config`, default: the rules' own)."""
    config = config or Config()
    if name not in profiles():
        raise ConfigError(f"unknown profile {name!r}; known: {', '.join(profiles())}")
    path = PROFILES / f"{name}.yaml"
    _apply(config, _read_yaml(path.read_bytes(), str(path)) or {}, str(path), conditions=True)
    config.profile = name
    return config


def load_config(root: str | Path, files: Files | None = None) -> Config:
    """The taxonomy repo's settings, checked against the registered rules and thresholds:
    its profile first, then its own rules and thresholds over it. `files`: where to read
    them (default: `root` on disk)."""
    data, source = _settings(files or Files(root))
    where = source or "config"
    profile = data.get("profile", DEFAULT_PROFILE) if isinstance(data, dict) else DEFAULT_PROFILE
    if not isinstance(profile, str) or profile not in profiles():
        raise ConfigError(f"{where}: unknown profile {profile!r}; known: {', '.join(profiles())}")
    config = load_profile(profile)
    _apply(config, data, where, conditions=False)
    config.source = source
    config.document_hosts = _document_hosts(data, where)
    return config
