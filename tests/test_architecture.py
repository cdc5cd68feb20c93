"""The package's shape: no import cycles (lazy imports inside functions count too) and no
module importing another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lab_hooks"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(module imported, name imported or "", line) for every lab_hooks import in the file, at any depth."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "lab_hooks"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "lab_hooks":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, "", node.lineno) if sub in known else (base, alias.name, node.lineno))
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (imports for type hints never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", "")) == "TYPE_CHECKING":
                todo.extend(child.orelse)
            else:
                todo.append(child)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target, _, _ in imports(path, known) if target in known and target != name}
            for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_module_imports_another_modules_private_names():
    known = modules()
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {target}.{name}"
                 for path in known.values() for target, name, line in imports(path, known)
                 if name.startswith("_") and not name.startswith("__") and target != module_name(path)]
    assert offenders == []


def test_the_hook_path_imports_nothing_heavy(tmp_path):
    """`validate --base` (the pre-commit hook, with a renamed and an edited leaf to classify)
    runs in milliseconds: no ML stack and no gitpython (lab_hooks.diff imports it only for
    the ChangeSet's reader, not for the policy the hook shares)."""
    import subprocess
    import sys

    from pr_repos import commit, git, leaf_files, write

    git(tmp_path, "init", "-q", "-b", "main")
    commit(tmp_path, leaf_files("compositional_skills/writing/haiku", "Write haiku"), "main")
    old = (tmp_path / "compositional_skills/writing/haiku/qna.yaml").read_text()
    write(tmp_path, {"compositional_skills/writing/haiku/qna.yaml": None,
                     "compositional_skills/writing/verse/qna.yaml": old.replace("haiku", "verse", 1)})
    probe = ("import sys; from lab_hooks.cli import main; code = main(['validate', '--base', 'HEAD']); "
             "print(code, sorted(m for m in ('git', 'torch', 'transformers', 'numpy', 'vllm') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[-1].endswith(" []"), run.stdout + run.stderr
