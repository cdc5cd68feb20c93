"""The judge-free reference metric: which seeds are held out, and how leaves are compared.

The arithmetic of the comparison runs here on given NLLs; scoring with the real model
(and its planted effects) is in test_eval_reference_model.py."""

import numpy as np
import pytest

from lab_hooks.eval import reference, stats
from lab_hooks.taxonomy.load import parse_leaf

SKILL = "version: 3\ntask_description: t\ncreated_by: me\nseed_examples:\n"


def skill(n, path="compositional_skills/writing/freeform/poems/qna.yaml", context=False):
    body = "".join(f"  - question: Question number {i}?\n    answer: Answer number {i}.\n"
                   + (f"    context: Context {i}.\n" if context else "") for i in range(n))
    return parse_leaf((SKILL + body).encode(), path)


@pytest.mark.parametrize("seeds,held", [(5, 0), (6, 1), (8, 3), (10, 5), (12, 6)])
def test_skills_hold_out_what_generation_does_not_need(seeds, held):
    leaf = skill(seeds)
    out = reference.held_out_seeds(leaf)
    assert len(out) == held and reference.held_out_seeds(leaf) == out  # fixed
    view = reference.training_view(leaf)
    assert len(view.examples) == seeds - held >= reference.SDG_SEEDS
    assert {e.question for e in view.examples}.isdisjoint({leaf.examples[i].question for i in out})
    refs = reference.references(leaf)
    assert [r.seed for r in refs if r.held_out] == sorted(out)


def test_held_out_seeds_do_not_follow_file_order():
    assert reference.held_out_seeds(skill(10)) != frozenset(range(5, 10))


def test_references_are_scored_in_the_trained_chat_format_with_context():
    from lab_hooks.sdg.generate import SYSTEM_PROMPT

    refs = reference.references(skill(5, "compositional_skills/x/grounded/y/qna.yaml", context=True))
    system, user, answer = refs[0].conversation
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"] == "Context 0.\n\nQuestion number 0?" and answer["content"] == "Answer number 0."
    assert reference.references_hash(refs) != reference.references_hash(refs[1:])


def _rows(rng, n, mean):
    return [list(rng.normal(mean, 0.2, 15).clip(0.01)) for _ in range(n)]


def test_compare_measures_a_changed_leaf_on_held_out_answers_against_the_controls():
    rng = np.random.default_rng(1)
    leaf = skill(10)
    controls = [skill(5, f"compositional_skills/c{i}/qna.yaml") for i in range(3)]
    rows = [{"path": leaf.name, "changed": True, "change": "new", "references": reference.references(leaf)}]
    rows += [{"path": c.name, "changed": False, "change": "unchanged", "references": reference.references(c)}
             for c in controls]
    base = {row["path"]: _rows(rng, len(row["references"]), 2.0) for row in rows}
    held = [r.held_out for r in rows[0]["references"]]
    candidate = {path: [[x - (0.05 if path != leaf.name else (0.8 if held[i] else 1.5)) for x in answer]
                        for i, answer in enumerate(answers)] for path, answers in base.items()}
    out = {row["path"]: row for row in reference.compare(rows, {"base": base, "candidate": candidate}, seed=0,
                                                         resamples=2000)}
    changed = out[leaf.name]["reference_nll"]
    assert changed["held_out"] and changed["n_answers"] == 5  # measured where it was not trained
    assert changed["delta"] == pytest.approx(-0.8, abs=1e-3)
    assert changed["beyond_controls"]["delta"] == pytest.approx(-0.75, abs=1e-3)
    assert changed["verdict"] == stats.IMPROVED
    assert changed["perplexity"]["candidate"] < changed["perplexity"]["base"]
    assert sum(a["measured"] for a in changed["answers"]) == 5 and len(changed["answers"]) == 10
    control = out[controls[0].name]["reference_nll"]
    assert not control["held_out"] and control["n_answers"] == 5
    assert control["beyond_controls"]["controls"] == [c.name for c in controls[1:]]  # the other controls
    assert control["verdict"] == stats.WITHIN_NOISE and control["delta"] == pytest.approx(-0.05, abs=1e-3)


def test_a_changed_leaf_and_a_control_each_need_their_own_minimum_effect():
    """A trained leaf varies more between two trainings than an untrained one, so each role's
    minimum effect comes from its own null spread: the PR's leaf and a control both 0.2 nats/token
    worse are within noise at a minimum effect of 0.3 and regressed at 0.1, each by its own."""
    rng = np.random.default_rng(2)
    leaves = [skill(5, f"compositional_skills/c{i}/qna.yaml") for i in range(4)]
    rows = [{"path": leaf.name, "changed": i < 1, "change": "new" if i < 1 else "unchanged",
             "references": reference.references(leaf)} for i, leaf in enumerate(leaves)]
    base = {row["path"]: _rows(rng, 5, 2.0) for row in rows}
    moved = {leaves[0].name: 0.2, leaves[1].name: 0.2}  # the PR's leaf and one control: 0.2 nats/token worse
    candidate = {path: [[x + moved.get(path, 0.0) for x in answer] for answer in answers]
                 for path, answers in base.items()}

    def verdicts(**effects):
        out = reference.compare(rows, {"base": base, "candidate": candidate}, seed=0, resamples=2000, **effects)
        return [row["reference_nll"]["verdict"] for row in out[:2]]

    assert verdicts(min_effect=0.3, min_effect_controls=0.1) == [stats.WITHIN_NOISE, stats.REGRESSED]
    assert verdicts(min_effect=0.1, min_effect_controls=0.3) == [stats.REGRESSED, stats.WITHIN_NOISE]


def test_only_the_default_minimum_effects_claim_the_demo_s_calibration():
    """The defaults were measured on the demo's training; a runner's own figures claim nothing of it."""
    assert reference.rules(reference.MIN_EFFECT, reference.MIN_EFFECT_CONTROLS)["calibrated_on"] == \
        reference.CALIBRATED_ON
    assert "calibrated_on" not in reference.rules(0.3, reference.MIN_EFFECT_CONTROLS)
    assert "calibrated_on" not in reference.rules(reference.MIN_EFFECT, 0.2)
