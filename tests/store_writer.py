"""A deterministic store workload, run as a subprocess by test_store.py.

`python store_writer.py STORE_URL [BUILD_LOG]`: builds artifacts, puts records and
swaps the pair of refs main/checkpoint + main/replay for each step. Prints
"ready" once imported, "step I" after each step (the test kills it at random
points in the run, counted in steps so the kills land however fast the machine)
and "done" at the end. Every build appends a line to BUILD_LOG, if given.
"""

import os
import sys

from lab_hooks.store import Store, artifact_key

STEPS = 40


def payload(i: int, name: str, size: int) -> bytes:
    seed = f"{i}:{name}:".encode()
    return (seed * (size // len(seed) + 1))[:size]


def main(url: str, log: str | None) -> None:
    store = Store(url=url)
    print("ready", flush=True)
    for i in range(STEPS):
        def build(out, kind, i=i):
            if log:
                fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                os.write(fd, f"{kind} {i} {os.getpid()}\n".encode())
                os.close(fd)
            (out / "shards").mkdir()
            for n in range(4):
                (out / "shards" / f"{n}.jsonl").write_bytes(payload(i, f"{kind}{n}", 20_000 + 1000 * n))
            (out / "meta.json").write_text(f'{{"step": {i}}}')

        with store.run("writer", {"step": i}) as run:
            ckpt = artifact_key("checkpoint", step=i)
            replay = artifact_key("replay", step=i)
            store.ensure(ckpt, lambda out: build(out, "checkpoint"), kind="checkpoint", meta={"step": i})
            store.ensure(replay, lambda out: build(out, "replay"), kind="replay", meta={"step": i})
            store.record_put_many({artifact_key("sample", step=i, n=n): {"step": i, "n": n, "text": "x" * n}
                                   for n in range(25)})
            store.set_refs({"main/checkpoint": ckpt, "main/replay": replay})
            run.use(ckpt, replay)
        print(f"step {i}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
