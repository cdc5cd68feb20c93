"""The store on its two backends, same run: ref reads and updates per second, and a cached PR run.

1. A fresh LAB_HOME (assets and models linked to the warm cache) runs a PR once into the
   default SQLite store (cold: every model stage computes): the scenario and tiny settings of
   tests/test_runners.py (main has a haiku leaf, the PR adds limericks; embedded model).
2. `lab-hooks store migrate` copies that store into PostgreSQL (a throwaway server on
   127.0.0.1 started from this machine's binaries, as the tests do; artifacts in a temp dir).
3. The same PR again, served from the store, alternating SQLite and PostgreSQL for
   `--rounds` rounds each (separate processes, as a runner runs them): median wall.
4. In one process per backend, alternating: `get_ref` reads per second, and compare-and-swap
   updates of main's two refs (`set_refs(..., expect=...)`) per second.

SQLite, the default and what one runner uses, is the anchor.

    /work/bin/heavy .venv/bin/python bench/store.py

(It takes its code from the checkout it is in, subprocesses too, so it can run from a
snapshot: `git worktree add /tmp/b COMMIT && /work/bin/heavy .venv/bin/python /tmp/b/bench/store.py`.)
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def taxonomy(dest: Path) -> Path:
    from pr_repos import commit, git, init_repo, leaf_files
    from test_pr_e2e import HAIKU, LIMERICK_SEEDS, LIMERICKS

    repo = init_repo(dest, leaf_files(HAIKU, "Write haiku on everyday scenes."))
    git(repo, "checkout", "-qb", "pr")
    commit(repo, leaf_files(LIMERICKS, "Write limericks.", LIMERICK_SEEDS), "add limericks")
    git(repo, "checkout", "-q", "main")
    return repo


def timed_pr(repo: Path, env: dict, out: Path) -> float:
    from test_runners import PR

    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lab_hooks", "pr", "--repo", str(repo), "--base", "main",
                           "--head", "pr", "--out", str(out), *PR], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"lab-hooks pr failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def stage_status(out: Path) -> str:
    import json

    run = json.loads((out / "results.json").read_text())
    return " ".join(f"{s['name']}={s['status']}" for s in run["stages"])


def ref_rates(url: str, reads: int, updates: int) -> tuple[float, float]:
    from lab_hooks.store import Store, artifact_key

    store = Store(url)
    a, b = (store.ensure(artifact_key("bench-ref", n=n), lambda out, n=n: (out / "n").write_text(str(n)),
                         kind="bench").name for n in (1, 2))
    store.set_refs({"bench/checkpoint": a, "bench/replay": a})
    began = time.perf_counter()
    for _ in range(reads):
        store.get_ref("bench/checkpoint")
    read_rate = reads / (time.perf_counter() - began)
    began = time.perf_counter()
    for i in range(updates):
        old, new = (a, b) if i % 2 == 0 else (b, a)
        store.set_refs({"bench/checkpoint": new, "bench/replay": new}, expect={"bench/checkpoint": old})
    update_rate = updates / (time.perf_counter() - began)
    store.delete_refs("bench/checkpoint", "bench/replay")
    store.close()
    return read_rate, update_rate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="cached PR runs per backend (alternating)")
    p.add_argument("--reads", type=int, default=20000)
    p.add_argument("--updates", type=int, default=2000)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import PostgresServer

    from lab_hooks.home import lab_home
    from lab_hooks.models.embedded import embedded_checkpoint

    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; uptime: "
          f"{os.popen('uptime').read().strip()}", flush=True)
    embedded_checkpoint()  # warm setup: converted before timing
    warm = lab_home()
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="lab-hooks-bench-store-") as tmp:
            tmp = Path(tmp)
            home = tmp / "home"
            home.mkdir()
            for name in ("assets", "models"):
                (home / name).symlink_to(warm / name)
            repo = taxonomy(tmp / "taxonomy")
            env = {k: v for k, v in os.environ.items() if k != "LAB_STORE_URL"} | {
                "LAB_HOME": str(home), "PYTHONPATH": str(ROOT)}  # this checkout's code, in every process
            wall = timed_pr(repo, env, tmp / "cold")
            print(f"cold PR run into SQLite: {wall:.1f} s ({stage_status(tmp / 'cold')})", flush=True)

            urls = {"sqlite": f"sqlite://{home / 'store'}",
                    "postgresql": f"{server.database()}?artifacts={tmp / 'shared'}"}
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lab_hooks", "store", "--url", urls["sqlite"], "migrate",
                            "--to", urls["postgresql"]], env=env, check=True, capture_output=True)
            print(f"store migrate SQLite -> PostgreSQL: {time.perf_counter() - began:.1f} s", flush=True)

            walls: dict[str, list[float]] = {name: [] for name in urls}
            for i in range(args.rounds):
                for name, url in urls.items():
                    out = tmp / f"{name}{i}"
                    walls[name].append(timed_pr(repo, env | {"LAB_STORE_URL": url}, out))
                    status = stage_status(out)
                    if "generate=cached train=cached evaluate=cached" not in status:
                        raise SystemExit(f"{name}: the rerun was not served from the store: {status}")
            for name, values in walls.items():
                print(f"cached PR run, {name:<10}: median {statistics.median(values):.2f} s "
                      f"(runs: {', '.join(f'{v:.2f}' for v in values)})", flush=True)

            rates: dict[str, list[tuple[float, float]]] = {name: [] for name in urls}
            for _ in range(3):
                for name, url in urls.items():
                    rates[name].append(ref_rates(url, args.reads, args.updates))
            for name, values in rates.items():
                reads = statistics.median(r for r, _ in values)
                updates = statistics.median(u for _, u in values)
                print(f"refs, {name:<10}: {reads:,.0f} reads/s, {updates:,.0f} compare-and-swap updates/s "
                      f"(median of 3; {args.reads} reads, {args.updates} updates of 2 refs each)")
    finally:
        server.stop()
    print(f"cores: {os.cpu_count()}; anchor: SQLite, the default store (one runner)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
