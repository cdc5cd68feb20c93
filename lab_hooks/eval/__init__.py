"""MT-Bench and branch evaluation: candidate vs base, with deltas that say how sure they are.

The PR loop calls one function::

    from lab_hooks.eval import Settings, evaluate, render

    results = evaluate(
        base="hf:/runner/main-checkpoint",       # a spec, or a loaded Backend
        candidate="hf:/runner/pr-42-checkpoint",
        judge="vllm:/models/prometheus?...",     # embedded:smollm2-135m-instruct = smoke test only
        changed_leaves=leaves,                   # taxonomy Leaf objects the PR adds or modifies
        store=Store(),                           # lab_hooks.store: caches answers and judgments
        new_leaves={leaf.name for leaf in added},
        unchanged_leaves=all_other_leaves,       # a fixed sample of these is asked too
        settings=Settings(quick=None, seed=0),
        ids={"base": main_checkpoint_key},       # optional: skips hashing the checkpoint's files
    )
    comment = render(results)                   # markdown

`results` is plain JSON (documented in docs/eval-results.md); everything but
`results["timings"]` is a pure function of the inputs and the seed.

Steps (lab_hooks/eval/run.py): build the question sets (MT-Bench or its
`quick` stratified subset; each changed skill leaf's seed questions), answer
them with each model (batched, turn 2 sees turn 1), judge every turn with
FastChat's single-answer prompts (judge.py; G-Eval expectations where the
judge's backend reports log-probabilities), then score and compare with a
paired bootstrap (stats.py). Beside that, the judge-free metric (reference.py):
each changed leaf's and each control leaf's seed answers scored by both models
(per-token NLL), the verdict drawn on the move beyond the controls'. The judge
first rates a calibration set (calibration.py); a judge that cannot tell
reference answers from degraded ones draws no verdict. Optionally, pairwise
judging with position swap (pairwise.py). Answers, judgments, NLLs and the
calibration are store records keyed by (checkpoint, question set, settings,
judge, seed): a second PR against the same base only runs the candidate.
"""

from lab_hooks.eval.render import render
from lab_hooks.eval.run import Settings, evaluate

__all__ = ["Settings", "evaluate", "render"]
