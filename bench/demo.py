"""`make demo` timed: a first run on an empty store, then the same demo again.

    .venv/bin/python bench/demo.py [--out DIR]   # DIR/first, DIR/second: each run's comment.md, results.json

The store starts empty (a fresh LAB_HOME whose `assets` and `models` link to
the warm cache, so "warm setup" means: venv built, model converted). Prints,
for each run, wall time, CPU time (user+sys of the demo process tree) and the
load average when it started, since other work on the machine stretches wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_demo(env: dict, out: Path) -> tuple[float, float, float, int]:
    load = os.getloadavg()[0]
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "lab_hooks.demo", "--out", str(out)], cwd=ROOT, env=env,
                        stdout=subprocess.DEVNULL).returncode
    return time.perf_counter() - wall0, cpu_seconds() - cpu0, load, rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="keep each run's comment.md and results.json here (default: a temp dir)")
    args = p.parse_args(argv)
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    sys.path.insert(0, str(ROOT))
    from lab_hooks.home import lab_home
    from lab_hooks.models.embedded import embedded_checkpoint

    embedded_checkpoint()  # warm setup: the asset fetched and converted before timing
    warm = lab_home()
    with tempfile.TemporaryDirectory(prefix="lab-hooks-bench-demo-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        for name in ("assets", "models"):
            (home / name).symlink_to(warm / name)
        env = {**os.environ, "LAB_HOME": str(home)}
        out = Path(args.out) if args.out else Path(tmp) / "out"
        for name, label in (("first", "first run (empty store)"), ("second", "second run (same demo)")):
            wall, cpu, load, rc = run_demo(env, out / name)
            print(f"{label}: wall {wall:.1f} s, CPU {cpu:.1f} s, load average at start {load:.1f}, exit {rc}")
            if rc != 0:
                return rc
    print(f"cores: {os.cpu_count()}; anchor: none runs this loop (InstructLab has no PR loop to time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
