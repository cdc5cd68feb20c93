"""The train stage: phase 2 (phase 1 first for knowledge) from main's checkpoint with replay."""

from __future__ import annotations

from pathlib import Path

from lab_hooks.loop.plan import removed_leaves
from lab_hooks.loop.run import StageFailed


def served_spec(student: str, checkpoint: Path) -> str:
    """Serve a trained checkpoint the way the student is served (vLLM stays vLLM)."""
    return f"{'vllm' if student.startswith('vllm:') else 'hf'}:{checkpoint}"


def train(run, gen, store):
    """Phase 2 (phase 1 first for knowledge) from main's checkpoint with replay from main's buffer."""
    from lab_hooks.train.cli import student_dir
    from lab_hooks.train.loop import TrainConfig
    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.replay import CHECKPOINT_REF, buffer_leaves, load_buffer, read_jsonl

    opts = run.opts
    main_key = store.get_ref(CHECKPOINT_REF)
    buffer = buffer_leaves(store)
    changed = {r.leaf: read_jsonl(r.dataset) for r in gen.leaves if r.ok}
    config = TrainConfig(**{"seed": opts.seed, "progress": opts.progress, **opts.train})
    before = {a.key for a in store.artifacts("checkpoint")}
    key, checkpoint, summary = train_candidate(
        store, load_buffer(store), changed, removed_leaves(run.data["changed_leaves"]), student_dir(opts.student),
        config, replay_ratio=opts.replay_ratio)
    if key is None:
        raise StageFailed("nothing to train: the changed leaves produced no phase-2 samples")
    run.data["training"] = {
        "method": config.method, "parent": main_key[:12] if main_key else opts.student,
        "replay_buffer_leaves": len(buffer),
        "replay_samples": sum(p["replay_samples"] for p in summary["phases"]),
        "phases": [{k: p.get(k) for k in ("phase", "new_samples", "replay_samples", "replay_ratio", "replay", "steps",
                                          "loss_first", "loss_last", "dropped", "tokens_per_s", "wall_s")}
                   for p in summary["phases"]]}
    run.data["models"]["base_checkpoint"] = main_key or opts.student
    run.data["models"]["candidate_checkpoint"] = key
    base_spec = served_spec(opts.student, store.get(main_key)) if main_key else opts.student
    result = (base_spec, served_spec(opts.student, checkpoint), key, buffer)
    return ("cached", result) if key in before else result
