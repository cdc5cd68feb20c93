"""The hook engine's whole-tree run in a fresh interpreter, single-threaded as a hook
process is (a test process that loaded vLLM or torch has threads, and the engine rightly
does not fork then). Prints, as JSON, how often it forked and what it reported.

    python tests/fork_probe.py {plain,killed,crashes} ROOT FILE...

`killed`: a taxonomy-wide check kills the forked child; `crashes`: one raises."""

import dataclasses
import json
import os
import sys
from pathlib import Path

from lab_hooks.checks import engine


def killed_in_the_child(leaves, ctx, parent=os.getpid()):
    if os.getpid() != parent:
        os.kill(os.getpid(), 9)
    return iter(())


def crashes(leaves, ctx):
    raise RuntimeError("boom")


def main(argv: list[str]) -> int:
    mode, root, *files = argv
    extra = {"plain": [], "killed": [killed_in_the_child], "crashes": [crashes]}[mode]
    forks = []
    real_fork = os.fork
    os.fork = lambda: forks.append(1) or real_fork()
    engine.FORK_AT_LEAVES = 2
    engine.load_checks()  # registers the shipped checks; the planted one runs after them
    engine.TAXONOMY_CHECKS = [*engine.TAXONOMY_CHECKS, *extra]
    report = engine.check_files(files, Path(root))
    print(json.dumps({"forks": len(forks), "findings": sorted(report.findings),
                      "metrics": [dataclasses.astuple(m) for m in report.metrics],
                      "internal_errors": report.internal_errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
