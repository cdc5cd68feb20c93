"""The run store: everything lab-hooks computes, keyed by what determines it.

    from lab_hooks.store import Store, artifact_key

    store = Store()                       # LAB_STORE_URL, else LAB_HOME/store; Store(path) elsewhere
    key = artifact_key("sdg", leaf=leaf.blob_sha, pipeline=sha256_tree(pipeline_dir),
                       teacher="embedded:smollm2-135m-instruct", seed=42)

Directory artifacts (generated data, checkpoints, eval results), immutable once made:
    store.get(key) -> Path | None                   only complete artifacts
    store.ensure(key, build_fn, kind=, meta=) -> Path
        computes once across processes: build_fn(tmpdir) writes the files; others wait
    with store.build(key, kind=, meta=) as tmpdir:  always runs the body; registered
        atomically on clean exit (fsync, rename, THEN the manifest row)
JSON records (fine-grained results: one SDG sample, one judgment), transactional:
    store.record_get(key) / record_get_many(keys) / record_put(key, value) / record_put_many({...})
Dependencies: `deps=[keys]` on build/ensure/record_put (`record_put_many(items, deps={key: [...]})`)
    says what an artifact or record needs (a replay record: the SDG data it lists); gc keeps
    everything reachable from refs, recent runs and recent items, like git keeps reachable objects.
    with store.lock(key): ...                       the key's lock, for work done once across runners
        (check, compute, then build: reentrant within a thread; eval records, training)
Refs, the names of what is current ("main/checkpoint", "pr/12/checkpoint"):
    store.get_ref(name) / refs(prefix) / set_ref(name, key) / delete_refs(*names)
    store.set_refs({"main/checkpoint": c, "main/replay": r}, expect={...})  one transaction
Runs, so gc keeps what recent jobs used (and does not run beside a running one):
    with store.run("pr", {"pr": 12}) as run: run.use(key, ...)
Maintenance (`lab-hooks store ls|verify|gc|ref|migrate`): store.verify() -> [Problem], store.gc(keep_days).
Backends (`LAB_STORE_URL`, lab_hooks/store/manifest.py): unset, the SQLite store in LAB_HOME/store for
    one machine; `postgresql://…?artifacts=/shared/dir` for several runners (docs/runners.md).
`get` never serves an artifact whose files changed since they were hashed (StoreCorrupt).

Keys of artifacts are sha256 hex (`artifact_key`); record keys are any string
(use `artifact_key` too, so they say what determined them).
"""

from lab_hooks.store.keys import artifact_key, canonical_json, sha256_file, sha256_tree
from lab_hooks.store.manifest import StoreError
from lab_hooks.store.store import Artifact, GcReport, Problem, RefsMoved, Run, Store, StoreBusy, StoreCorrupt

__all__ = [
    "Artifact", "GcReport", "Problem", "RefsMoved", "Run", "Store", "StoreBusy", "StoreCorrupt", "StoreError",
    "artifact_key", "canonical_json", "sha256_file", "sha256_tree",
]
