"""The engine: runs one pipeline over one leaf's seeds, one step at a time.

Units of work are (leaf blob, seed, stage, sample index): each LLM call's
completions are kept in a `UnitCache` under a key that hashes everything that
determines them (pipeline file, teacher spec, run seed, leaf blob, the rendered
conversation, the sampling parameters). Calls go to the teacher in fixed batches
whose membership depends only on those inputs, and a batch's results are written
as soon as it returns: after a kill -9, a rerun finds what was written, sends the
same batches for the rest, and ends with the same samples as an uninterrupted
run. A run that finds every unit cached calls the teacher zero times.

A teacher whose `concurrent` attribute is true (a server over HTTP) gets all of
a step's missing batches at once; since a batch's inputs and sampling seed do
not depend on when it is sent, the samples are those of a one-by-one run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from lab_hooks.models.types import Backend, Completion, SamplingParams
from lab_hooks.sdg.pipeline import Pipeline, Step
from lab_hooks.sdg.policy import keep_rule
from lab_hooks.store.keys import artifact_key


class UnitCache(Protocol):
    """What the engine needs of `lab_hooks.store.Store`: its small JSON records."""

    def record_get_many(self, keys: list[str]) -> dict[str, dict]: ...

    def record_put_many(self, items: dict[str, dict]) -> None: ...


class CountingBackend:
    """The teacher, counting what this process actually asked of it.

    Given a spec, the model is loaded on first use: a run served from the store
    never loads it (for a vLLM teacher, a minute saved). `seconds` is the wall
    time during which at least one call was in flight, so calls that overlap (a
    `concurrent` teacher) are not counted twice.
    """

    def __init__(self, backend: Backend | str):
        self._backend = backend
        self.spec = backend if isinstance(backend, str) else backend.spec
        self.calls = 0  # chat() invocations
        self.conversations = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._busy_since = 0.0

    @property
    def concurrent(self) -> bool:
        """Whether chat() may run in several threads at once: a server, known from its spec
        without loading anything (an in-process model never is)."""
        if isinstance(self._backend, str):
            from lab_hooks.models import parse_spec

            return parse_spec(self._backend).kind == "openai"
        return bool(getattr(self._backend, "concurrent", False))

    def chat(self, conversations: list, params: SamplingParams) -> list[list[Completion]]:
        backend = self.backend  # loaded (once) before the clock starts
        self._enter()
        try:
            out = backend.chat(conversations, params)
        finally:
            self._leave()
        with self._lock:
            self.calls += 1
            self.conversations += len(conversations)
            for completions in out:
                for c in completions:
                    self.prompt_tokens += c.prompt_tokens
                    self.completion_tokens += c.completion_tokens
        return out

    def _enter(self) -> None:
        with self._lock:
            if not self._in_flight:
                self._busy_since = time.perf_counter()
            self._in_flight += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if not self._in_flight:
                self.seconds += time.perf_counter() - self._busy_since

    @property
    def backend(self) -> Backend:
        with self._lock:  # concurrent leaves: one load
            if isinstance(self._backend, str):
                from lab_hooks.models import load_backend

                self._backend = load_backend(self._backend)
        return self._backend

    def __getattr__(self, name: str):  # tokenizer and friends of the wrapped backend
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.backend, name)


@dataclass
class Sample:
    seed: int  # index of the seed (skills: seed example; knowledge: document chunk)
    index: tuple[int, ...]  # which child at each expanding step
    fields: dict[str, str]
    trace: list[dict] = field(default_factory=list)  # per step: raw text, parsed score, verdict
    dropped_by: str | None = None

    @property
    def unit(self) -> str:
        return ".".join(map(str, (self.seed, *self.index)))


@dataclass
class StepStats:
    inputs: int = 0
    candidates: int = 0  # completions received (inputs x n for generate)
    passed: int = 0
    unparseable: int = 0
    rejected: int = 0  # parsed, but the judge's score or dedup said no
    applied: bool = True  # a judge step whose verdicts filter (see lab_hooks.sdg.policy)
    would_drop: int = 0  # a judge step not applied: the samples its verdicts would have dropped

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class PipelineRun:
    samples: list[Sample]  # every sample that ever existed, in unit order
    steps: dict[str, StepStats]
    prompt_tokens: int = 0  # teacher tokens behind these samples (cached or not)
    completion_tokens: int = 0

    @property
    def accepted(self) -> list[Sample]:
        return [s for s in self.samples if s.dropped_by is None]


EXPANDED = "(expanded)"


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Engine:
    pipeline: Pipeline
    teacher: CountingBackend
    cache: UnitCache
    samples_per_seed: int = 3
    seed: int = 0
    max_tokens: int | None = None  # caps every step's max_tokens (previews, tests)
    batch_size: int | None = None  # overrides the pipeline's (part of what determines samples)
    judges_applied: bool = True  # False: judge verdicts are recorded, drop nothing (lab_hooks.sdg.policy)
    progress: bool = False

    def params(self, step: Step, batch: int) -> SamplingParams:
        n = self.samples_per_seed if step.n == "samples_per_seed" else step.n
        max_tokens = min(step.max_tokens, self.max_tokens) if self.max_tokens else step.max_tokens
        batch_seed = int(_digest([self.seed, step.name, batch])[:8], 16) & 0x7FFFFFFF
        return SamplingParams(temperature=step.temperature, max_tokens=max_tokens, n=n, seed=batch_seed)

    def run(self, seeds: list[dict], *, leaf_blob: str, references: list[str], label: str = "") -> PipelineRun:
        """All steps over `seeds`; `references` are the leaf's seed texts dedup must not repeat."""
        samples = [Sample(i, (), dict(s)) for i, s in enumerate(seeds)]
        run = PipelineRun(samples=list(samples), steps={})
        alive = samples
        for step in self.pipeline.steps:
            stats = run.steps.setdefault(step.name, StepStats(inputs=len(alive)))
            stats.applied = step.type != "judge" or self.judges_applied
            if step.type == "dedup":
                alive = self._dedup(step, alive, references, stats)
            else:
                completions = self._complete(step, alive, leaf_blob, run, label)
                alive = self._apply(step, alive, completions, run, stats)
        run.samples = sorted((s for s in run.samples if s.dropped_by != EXPANDED), key=lambda s: (s.seed, s.index))
        return run

    def _complete(self, step: Step, alive: list[Sample], leaf_blob: str, run: PipelineRun, label: str) -> list[list[dict]]:
        """Completions for each alive sample, from the cache or the teacher, in fixed batches."""
        size = self.batch_size or self.pipeline.batch_size
        batches = []
        for b, start in enumerate(range(0, len(alive), size)):  # fixed batches: same inputs, same batches
            batch = alive[start:start + size]
            params = self.params(step, b)
            conversations = [step.render(s.fields) for s in batch]
            keys = [
                artifact_key("sdg-unit", leaf=leaf_blob, seed=s.seed, stage=step.name, sample=s.unit,
                             pipeline=self.pipeline.sha, teacher=self.teacher.spec, run_seed=self.seed,
                             conversation=conv, params=[params.temperature, params.max_tokens, params.n, params.seed])
                for s, conv in zip(batch, conversations)
            ]
            batches.append((batch, params, conversations, keys))
        found = self.cache.record_get_many([k for *_, keys in batches for k in keys])
        records = [[found.get(k) for k in keys] for *_, keys in batches]
        missing = [i for i, rs in enumerate(records) if any(r is None for r in rs)]
        bar = _bar(len(alive), f"{label} {step.name}".strip(), self.progress)
        bar.update(len(alive) - sum(len(batches[i][0]) for i in missing))  # found in the cache

        def fill(i: int) -> None:
            batch, params, conversations, keys = batches[i]
            fresh = self.teacher.chat(conversations, params)
            new = {}
            for j, (s, key) in enumerate(zip(batch, keys)):
                if records[i][j] is None:
                    records[i][j] = new[key] = {
                        "leaf": leaf_blob, "seed": s.seed, "stage": step.name, "sample": s.unit,
                        "completions": [dict(c.__dict__) for c in fresh[j]],
                    }
            self.cache.record_put_many(new)  # one transaction: the batch is there whole or not at all
            bar.update(len(batch))

        if self.teacher.concurrent and len(missing) > 1:
            with ThreadPoolExecutor(len(missing), thread_name_prefix=f"sdg-{step.name}") as pool:
                for done in [pool.submit(fill, i) for i in missing]:
                    done.result()
        else:
            for i in missing:
                fill(i)
        bar.close()
        results: list[list[dict]] = []
        for r in (r for rs in records for r in rs):
            for c in r["completions"]:
                run.prompt_tokens += c["prompt_tokens"]
                run.completion_tokens += c["completion_tokens"]
            results.append(r["completions"])
        return results

    def _apply(self, step: Step, alive: list[Sample], completions: list[list[dict]], run: PipelineRun,
               stats: StepStats) -> list[Sample]:
        survivors = []
        for sample, outs in zip(alive, completions):
            if step.expands:
                children = [Sample(sample.seed, (*sample.index, j), dict(sample.fields), list(sample.trace))
                            for j in range(len(outs))]
                run.samples.extend(children)
                sample.dropped_by = EXPANDED  # its children carry it on
            else:
                children = [sample]
            for child, out in zip(children, outs):
                stats.candidates += 1
                parsed = step.parser(out["text"])
                entry = {"step": step.name, "raw": out["text"], "finish_reason": out["finish_reason"]}
                if step.type == "judge":
                    entry.update(self._verdict(step, parsed))
                    if not stats.applied:  # recorded, drops nothing
                        entry["applied"] = False
                        stats.would_drop += entry["verdict"] != "kept"
                    elif entry["verdict"] != "kept":
                        stats.unparseable += entry["verdict"] == "unparseable"
                        stats.rejected += entry["verdict"] == "rejected"
                        child.dropped_by = step.name
                elif parsed is None:
                    stats.unparseable += 1
                    entry.update(verdict="unparseable")
                    child.dropped_by = step.name
                else:
                    child.fields.update(parsed)
                    entry.update(verdict="kept")
                child.trace.append(entry)
                if child.dropped_by is None:
                    stats.passed += 1
                    survivors.append(child)
        return survivors

    @staticmethod
    def _verdict(step: Step, parsed: dict | None) -> dict:
        if parsed is None:
            return {"verdict": "unparseable"}
        if step.keeps(parsed["score"]):
            return {"score": parsed["score"], "verdict": "kept"}
        return {"score": parsed["score"], "verdict": "rejected",
                "reason": f"score {parsed['score']}, kept only {keep_rule(step.keep)}"}

    def _dedup(self, step: Step, alive: list[Sample], references: list[str], stats: StepStats) -> list[Sample]:
        from lab_hooks.checks.similarity import near_duplicates, normalize

        seen = {normalize(r): r for r in references}
        kept_texts = list(references)
        survivors = []
        for sample in alive:
            text = sample.fields[step.field]
            stats.candidates += 1
            key = normalize(text)
            entry = {"step": step.name}
            if key in seen:
                entry.update(verdict="rejected", reason="exact duplicate", of=seen[key])
            else:
                pairs = near_duplicates([text], kept_texts, step.threshold) if kept_texts else []
                if pairs:
                    _, j, score = max(pairs, key=lambda p: p[2])
                    entry.update(verdict="rejected", reason=f"ROUGE-L {score:.2f} >= {step.threshold}", of=kept_texts[j])
                else:
                    entry.update(verdict="kept")
            sample.trace.append(entry)
            if entry["verdict"] == "kept":
                seen[key] = text
                kept_texts.append(text)
                stats.passed += 1
                survivors.append(sample)
            else:
                stats.rejected += 1
                sample.dropped_by = step.name
        return survivors


class _NoBar:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _bar(total: int, desc: str, show: bool):
    if not show or not total:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", leave=False)
