"""The judge-free metric: how likely each model finds a leaf's own reference answers.

For every seed example of a leaf, the mean per-token negative log-likelihood (NLL) of
its answer given its question (a grounded skill's or a knowledge leaf's context
first), in the chat format the student is trained in (the SDG system prompt, the
student's template, end-of-turn token included: the tokens a training sample's loss
is taken on). Base and candidate are compared per leaf: delta = candidate − base
(lower is better), perplexity = exp(NLL), and a paired bootstrap CI over the leaf's
answers. No judge is involved, so it works with any student, the embedded 135M one
included.

Training moves every leaf's NLL a little (measured at demo size: the trained leaf
−0.158 nats/token, an unrelated control −0.011, both "significant"), and two trainings
that differ only in seed move it differently (up to 0.11 nats/token beyond the controls). The verdict is
therefore about the change beyond what the control leaves (a fixed sample of
unchanged ones) moved: the leaf's delta minus the controls' pooled delta, with a
joint bootstrap CI (stats.excess_delta), and it needs that excess to reach
`MIN_EFFECT` nats/token as well as a CI that excludes 0.

Which answers were trained on: a skill's seed answers are the teacher's in-context
examples in SDG, so the generated data imitates them. A skill leaf with more seeds
than SDG needs holds some out (`held_out_seeds`): they never reach the teacher nor
the trainer, and a changed leaf's verdict is drawn on them when there are at least
`stats.MIN_QUESTIONS`. A knowledge leaf's Q&A beyond the first of each context is
never shown to the teacher (its document is): those count as held out too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np

from lab_hooks.eval import stats

SDG_SEEDS = 5  # the seeds a skill leaf keeps for generation (InstructLab's minimum per skill leaf)
# nats/token beyond the controls' move for a verdict on a changed leaf, and on a control:
# the largest |excess| any leaf showed between two trainings of the demo's PR that differed
# only in seed (66 pairs of 12 seeds, bench/planted.py; docs/eval-results.md, *Planted effects*).
# A runner whose training differs calibrates its own (--min-effect, --min-effect-controls).
MIN_EFFECT = 0.11
MIN_EFFECT_CONTROLS = 0.11
# What the defaults were measured on, for the comment to say: they need not hold for other training.
CALIBRATED_ON = "null retrainings of the demo's PR, a 135M student trained 4 steps at lr 2e-5"
RANK_SALT = "held-out"


def _rank(leaf_name: str, question: str) -> str:
    return hashlib.sha256(f"{RANK_SALT}:{leaf_name}:{question}".encode("utf-8")).hexdigest()


def held_out_seeds(leaf) -> frozenset[int]:
    """Indices of the leaf's examples that neither generation nor training may see.

    Skills: beyond the `SDG_SEEDS` generation needs, up to half of the usable seeds,
    picked by a hash of the question (not by their order in the file); a leaf with
    five seeds holds out none. Knowledge: every Q&A but the first of each context.
    """
    usable = [i for i, e in enumerate(leaf.examples) if e.question.strip() and e.answer.strip()]
    if leaf.kind is not None and not leaf.kind.is_skill:
        firsts = {}
        for i in usable:
            firsts.setdefault(leaf.examples[i].context, i)
        return frozenset(i for i in usable if i not in set(firsts.values()))
    count = min(len(usable) - SDG_SEEDS, len(usable) // 2)
    if count <= 0:
        return frozenset()
    ranked = sorted(usable, key=lambda i: _rank(leaf.name, leaf.examples[i].question))
    return frozenset(ranked[:count])


def training_view(leaf):
    """The leaf as generation and training see it: a skill's held-out seeds removed."""
    if leaf.kind is not None and not leaf.kind.is_skill:
        return leaf  # the knowledge pipeline never reads those Q&A
    held = held_out_seeds(leaf)
    if not held:
        return leaf
    return dataclasses.replace(leaf, examples=tuple(e for i, e in enumerate(leaf.examples) if i not in held))


@dataclasses.dataclass(frozen=True)
class Reference:
    seed: int  # index of the example in the leaf
    conversation: tuple[dict, ...]  # system, user, and the reference answer
    held_out: bool


def references(leaf) -> list[Reference]:
    """The leaf's seed answers as conversations to score, with their questions (and contexts)."""
    from lab_hooks.sdg.generate import SYSTEM_PROMPT

    held = held_out_seeds(leaf)
    out = []
    for i, e in enumerate(leaf.examples):
        if not (e.question.strip() and e.answer.strip()):
            continue
        question = f"{e.context.strip()}\n\n{e.question.strip()}" if (e.context or "").strip() else e.question.strip()
        out.append(Reference(i, ({"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question},
                                 {"role": "assistant", "content": e.answer.strip()}), i in held))
    return out


def references_hash(refs: list[Reference]) -> str:
    rows = [[r.seed, list(r.conversation)] for r in refs]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def score(backend, refs: list[Reference]) -> list[list[float]]:
    """Per reference, the NLL (nats) of each of its answer's tokens under `backend`."""
    if not hasattr(backend, "answer_logprobs"):
        raise NotScorable(f"{backend.spec}: this backend cannot score given text (use hf: or vllm:)")
    return [[-lp for lp in row] for row in backend.answer_logprobs([list(r.conversation) for r in refs])]


class NotScorable(Exception):
    """A backend that reports no log-probabilities of given text (a remote chat API)."""


def _arrays(rows: list[list[float]]) -> list[np.ndarray]:
    return [np.array(row, dtype=float) for row in rows]


def _perplexity(nll: float | None) -> float | None:
    return None if nll is None else round(math.exp(min(nll, 50.0)), 4)


def compare(leaves: list[dict], nll: dict[str, dict[str, list[list[float]]]], *, seed: int,
            resamples: int = stats.RESAMPLES, min_effect: float = MIN_EFFECT,
            min_effect_controls: float = MIN_EFFECT_CONTROLS) -> list[dict]:
    """One results row per leaf: base → candidate NLL, delta with its CI, the excess over the controls, verdict.

    `leaves`: [{"path", "changed", "change", "references": [Reference]}]; `nll`: per role
    ("base", "candidate"), per leaf path, the token NLLs of each reference. A changed
    leaf is measured on its held-out answers when it has enough of them; its controls
    are all unchanged leaves, and a control's controls are the other unchanged leaves.
    """
    arrays = {role: {path: _arrays(rows) for path, rows in by_leaf.items()} for role, by_leaf in nll.items()}
    controls = [row["path"] for row in leaves if not row["changed"]]

    def pool(paths: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return tuple([a for p in paths for a in arrays[role][p]] for role in ("base", "candidate"))

    out = []
    for row in leaves:
        path, refs = row["path"], row["references"]
        held = [i for i, r in enumerate(refs) if r.held_out]
        on_held_out = row["changed"] and len(held) >= stats.MIN_QUESTIONS
        measured = held if on_held_out else list(range(len(refs)))
        base = [arrays["base"][path][i] for i in measured]
        candidate = [arrays["candidate"][path][i] for i in measured]
        delta = stats.paired_delta(base, candidate, group=f"nll/{path}", seed=seed, resamples=resamples)
        others = [p for p in controls if p != path]
        beyond = stats.excess_delta((base, candidate), pool(others), group=f"nll-excess/{path}", seed=seed,
                                    min_effect=min_effect if row["changed"] else min_effect_controls,
                                    resamples=resamples)
        out.append({
            "path": path, "changed": row["changed"], "change": row["change"],
            "reference_nll": {
                "base": delta["base"], "candidate": delta["candidate"], "delta": delta["delta"], "ci": delta["ci"],
                "perplexity": {"base": _perplexity(delta["base"]), "candidate": _perplexity(delta["candidate"])},
                "beyond_controls": {"delta": beyond["excess"], "ci": beyond["ci"],
                                    "controls_delta": beyond["controls_delta"], "controls": others},
                "verdict": beyond["verdict"],
                "n_answers": len(measured),
                "held_out": on_held_out,
                "answers": [{"seed": r.seed, "held_out": r.held_out, "measured": i in measured,
                             "tokens": len(arrays["base"][path][i]),
                             "base": round(float(arrays["base"][path][i].mean()), 4),
                             "candidate": round(float(arrays["candidate"][path][i].mean()), 4)}
                            for i, r in enumerate(refs)],
            },
        })
    return out


def rules(min_effect: float, min_effect_controls: float) -> dict:
    """The verdict rule as the results record it; the defaults carry what they were calibrated on."""
    out = {"min_effect": min_effect, "min_effect_controls": min_effect_controls, "sdg_seeds": SDG_SEEDS,
           "method": "paired bootstrap over answers; verdict on the excess over the controls (joint bootstrap)"}
    if (min_effect, min_effect_controls) == (MIN_EFFECT, MIN_EFFECT_CONTROLS):
        out["calibrated_on"] = CALIBRATED_ON
    return out
