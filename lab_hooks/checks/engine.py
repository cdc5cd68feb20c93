"""Run every registered check over a set of leaf files and collect one report.

A file that cannot be read or parsed gets one finding and the run goes on; a
check that crashes is an internal error for that file only.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from lab_hooks.checks.config import Config
from lab_hooks.checks.context import Context
from lab_hooks.checks.findings import OFF, Finding, Metric
from lab_hooks.checks.registry import LEAF_CHECKS, RULES, TAXONOMY_CHECKS, load_checks
from lab_hooks.taxonomy.leaf import Leaf, taxonomy_path
from lab_hooks.taxonomy.load import LeafError, parse_leaf, read_attribution, read_bounded

T = TypeVar("T")


@dataclass
class Report:
    files: list[str]
    findings: list[Finding] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.is_error for f in self.findings)


def taxonomy_name(file: str, root: str | Path) -> str:
    """The file's path below the taxonomy root when it is inside it, else as given."""
    path, root = os.path.abspath(file), os.path.abspath(root)
    return path[len(root) + 1:].replace(os.sep, "/") if path.startswith(root + os.sep) else Path(file).as_posix()


def load_for_check(file: str, root: Path, content: bytes | None = None, attribution: str | None = None) -> Leaf:
    """Read (or take `content` and `attribution`: another version of the file) and parse
    one leaf; `Leaf.file` stays as given so diagnostics point at it."""
    path = Path(file)
    if content is None:
        content, attribution = read_bounded(path), read_attribution(path)
    leaf = parse_leaf(content, taxonomy_name(file, root), attribution)
    return dataclasses.replace(leaf, file=file)


def find_root(files: Sequence[str]) -> Path:
    """The taxonomy root: the folder holding the first file's top-level tree
    (compositional_skills/, knowledge/, ...), else the current directory."""
    for file in files:
        path = Path(file).absolute()
        rel, kind = taxonomy_path(path.as_posix())
        if kind is not None:
            return Path(*path.parts[: len(path.parts) - len(rel.split("/"))])
    return Path(".")


# From this many leaves (a whole tree, not a commit's few) the checks across leaves run
# in a forked child while this process runs the per-leaf ones: two cores, about half the wall.
FORK_AT_LEAVES = 500


def check_files(files: Sequence[str], root: str | Path | None = None, config: Config | None = None,
                taxonomy_wide: bool = True) -> Report:
    """Check the files; `root` is the taxonomy root (found from the files when None).
    Without `taxonomy_wide`, each leaf is judged on its own (no checks across leaves)."""
    root = Path(root) if root is not None else find_root(files)
    leaves, unreadable = [], []
    for file in files:
        try:
            leaves.append(load_for_check(file, root))
        except LeafError as exc:
            unreadable.append(RULES[exc.code].at(file, exc.pos, exc.message))
    return check_leaves(leaves, unreadable, root, config, taxonomy_wide, files)


def check_leaves(leaves: Sequence[Leaf], unreadable: Sequence[Finding], root: str | Path,
                 config: Config | None = None, taxonomy_wide: bool = True,
                 files: Sequence[str] | None = None) -> Report:
    """Run every check on parsed leaves; `unreadable` are the findings of the files
    that did not parse (`files`, all of them, default: the leaves' files)."""
    load_checks()
    ctx = Context(Path(root), config or Config())
    ctx.checked = list(leaves)
    report = Report(files=list(files) if files is not None else [leaf.file for leaf in leaves])
    raw: list[Finding | Metric] = list(unreadable)
    across = _beside(lambda: _run_all(TAXONOMY_CHECKS if taxonomy_wide else [], "(taxonomy)", ctx.checked, ctx),
                     fork=taxonomy_wide and len(ctx.checked) >= FORK_AT_LEAVES)
    for leaf in ctx.checked:
        for check in LEAF_CHECKS:
            raw += _run(check, report, leaf.file, leaf, ctx)
    found, crashes = across()
    raw += found
    report.internal_errors += crashes
    version_1 = _version_1_files(ctx.checked) if ctx.config.version_1 else set()
    for item in raw:
        if isinstance(item, Metric):
            report.metrics.append(item)
            continue
        severity = ctx.config.severity(RULES[item.code], item.file in version_1)
        if severity != OFF:
            report.findings.append(item if severity == item.severity else item._replace(severity=severity))
    return report


def _version_1_files(leaves: Sequence[Leaf]) -> set[str]:
    """The files of the leaves InstructLab reads as version 1 (no `version:`, or 1)."""
    from lab_hooks.checks.schema import schema_version

    return {leaf.file for leaf in leaves if schema_version(leaf.version) == 1}


def _run(check, report: Report, where: str, *args) -> list[Finding | Metric]:
    try:
        return list(check(*args))
    except Exception as exc:  # a bug in one check must not hide the other files' results
        report.internal_errors.append(f"{where}: check {check.__module__}.{check.__name__} crashed: "
                                      f"{type(exc).__name__}: {exc}")
        return []


def _run_all(checks, where: str, *args) -> tuple[list[Finding | Metric], list[str]]:
    """Every check's results, and the crashes among them."""
    report = Report(files=[])
    return [item for check in checks for item in _run(check, report, where, *args)], report.internal_errors


def _beside(work: Callable[[], T], fork: bool) -> Callable[[], T]:
    """Start `work` in a forked child and return a call that waits for its (pickled)
    result; without `fork`, where there is no fork, or when threads run (a fork
    copies only the calling one), the call runs `work` itself. A child that dies
    (killed, out of memory) is not a lost result: the call then runs `work` here."""
    import threading

    if not (fork and hasattr(os, "fork") and threading.active_count() == 1):
        return work
    import pickle

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: writes its result and exits, never returns
        status = 1
        try:
            os.close(read_end)
            with open(write_end, "wb") as pipe:
                pickle.dump(work(), pipe, protocol=pickle.HIGHEST_PROTOCOL)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)

    def wait() -> T:
        with open(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        return pickle.loads(data) if status == 0 and data else work()

    return wait


def expand(paths: Iterable[str]) -> list[str]:
    """Files to check from CLI arguments: directories become the leaves under
    them, an attribution.txt stands for the leaf beside it; order kept, no repeats."""
    out: dict[str, None] = {}
    for arg in paths:
        path = Path(arg)
        if path.is_dir() and not path.is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                out.update((os.path.join(dirpath, n), None) for n in sorted(filenames) if n in ("qna.yaml", "qna.yml"))
        elif path.name == "attribution.txt":
            out.update((str(path.parent / n), None) for n in ("qna.yaml", "qna.yml") if (path.parent / n).exists())
        else:
            out[arg] = None
    return list(out)
