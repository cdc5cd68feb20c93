"""LAB synthetic data generation: taxonomy leaves in, filtered training samples out.

For callers (the PR loop, training):

    from lab_hooks.sdg import generate_leaves, MixConfig
    from lab_hooks.store import Store

    result = generate_leaves(leaves, "embedded:smollm2-135m-instruct", Store(),
                             out_dir=Path("out"), samples_per_seed=5, seed=0)
    for r in result.leaves:          # LeafResult, one per leaf, sorted by leaf name
        r.status                     # "ok" | "empty" (all filtered; r.filtered_by says by which step) | "error"
        r.dataset                    # out/leaves/<leaf>/messages.jsonl (InstructLab "messages" format)
        r.records, r.stats           # every candidate with judge raw output + score; counts, tokens, time
    result.mixes["skills"]           # out/skills_train_msgs.jsonl (+ result.recipes["skills"])
    result.mixes["knowledge"]        # out/knowledge_train_msgs.jsonl (+ its recipe)
    result.exit_code                 # 0 when every leaf produced samples, else 1
    result.calls                     # teacher calls this run made (0 on a fully cached rerun)

`leaves` are `lab_hooks.taxonomy.leaf.Leaf` values (from `load_leaf_file` or the diff);
`teacher` is a `Backend` or a spec for `lab_hooks.models.load_backend`; the store keeps
every unit of work (leaf blob, seed, stage, sample index), so a killed run resumes and a
repeated one asks the teacher nothing. Pipelines and prompts are YAML files in
`lab_hooks/sdg/pipelines/`; the engine is `lab_hooks.sdg.engine`.
"""

from lab_hooks.sdg.generate import GenerateResult, LeafResult, MixConfig, generate_leaves, pipeline_for

__all__ = ["GenerateResult", "LeafResult", "MixConfig", "generate_leaves", "pipeline_for"]
