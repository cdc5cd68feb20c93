"""`make demo`: what a taxonomy contributor sees.

For now, the pre-commit stage: the sample taxonomy validates clean, and a
deliberately broken copy of one of its leaves gets one line per problem, each
at its file:line:col. Later stages extend this into the whole pull-request loop.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from lab_hooks.checks.validate import main as validate

REPO = Path(__file__).resolve().parent.parent
TAXONOMY = REPO / "taxonomy"
LEAF = Path("compositional_skills/writing/freeform/haiku")


def break_leaf(text: str) -> str:
    """A contributor's typical mistakes: trailing spaces, a repeated key, a
    number where text belongs, a context in a freeform skill, too few seeds."""
    text = text.replace("version: 3\n", "version: 3   \n", 1)
    text = text.replace("created_by: lab-hooks\n", "created_by: lab-hooks\ncreated_by: me\n", 1)
    text = text.replace("  - question: Write a haiku about plate tectonics.",
                        "  - question: Write a haiku about plate tectonics.\n    context: Continents move.", 1)
    text = text.replace("      gold honey remains.\n", "      gold honey remains.\n  - question: How many?\n    answer: 42\n", 1)
    seeds = text.split("  - question:")
    return "  - question:".join(seeds[:5]).rstrip("\n")  # 4 seeds left, and no final newline


def section(title: str, argv: list[str], cwd: Path) -> int:
    print(f"\n$ lab-hooks validate {' '.join(argv)}    # {title}", flush=True)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        code = validate(argv)
    finally:
        os.chdir(here)
    print(f"(exit {code})", flush=True)
    return code


def main() -> int:
    print("lab-hooks demo: validating taxonomy leaves as the pre-commit hook does")
    clean = section("the sample taxonomy", ["taxonomy"], REPO)
    with tempfile.TemporaryDirectory(prefix="lab-hooks-demo-") as tmp:
        broken = Path(tmp) / LEAF
        shutil.copytree(TAXONOMY / LEAF, broken)
        leaf = broken / "qna.yaml"
        leaf.write_text(break_leaf(leaf.read_text()))
        failed = section("a broken copy of one leaf", [str(LEAF / "qna.yaml")], Path(tmp))
    if clean != 0 or failed != 1:
        print("demo: unexpected result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
