"""The generate stage: synthetic data for the changed leaves (lab_hooks.sdg), cached in the store."""

from __future__ import annotations

from pathlib import Path

from lab_hooks.loop.run import StageFailed


def generate(run, leaves, root: Path, store, out: Path):
    """SDG for the changed leaves, each without the seeds the evaluation holds out (eval.reference)."""
    from lab_hooks.eval.reference import held_out_seeds, training_view
    from lab_hooks.sdg import generate_leaves

    opts = run.opts
    held = {leaf.name: sorted(held_out_seeds(leaf)) for leaf in leaves if leaf.kind and leaf.kind.is_skill}
    leaves = [training_view(leaf) for leaf in leaves]
    result = generate_leaves(leaves, opts.teacher, store, out_dir=out / "sdg", samples_per_seed=opts.samples_per_seed,
                             seed=opts.seed, max_tokens=opts.sdg_max_tokens, taxonomy_root=root,
                             progress=opts.progress)
    rows = []
    for r in result.leaves:
        steps = r.stats.get("steps", {})
        dropped = {name: st["candidates"] - st["passed"] for name, st in steps.items()
                   if st.get("candidates", 0) > st.get("passed", 0)}
        rows.append({"leaf": r.leaf, "candidates": r.candidates, "accepted": r.accepted, "dropped": dropped,
                     "status": "ok" if r.ok else (r.message or r.status), "artifact": r.artifact,
                     "held_out_seeds": held.get(r.leaf, [])})
    run.data["generation"] = {"teacher": opts.teacher, "leaves": rows, "teacher_calls": result.calls}
    if not any(r.ok for r in result.leaves):
        raise StageFailed("no changed leaf produced any accepted sample: "
                          + "; ".join(f"{r.leaf}: {r.message or r.status}" for r in result.leaves))
    return ("cached", result) if result.calls == 0 else result
