"""From leaves to training files: seeds per pipeline, per-leaf datasets, the mixes.

Layout of `out_dir`:
  leaves/<leaf name>/messages.jsonl  accepted samples, InstructLab "messages" format
  leaves/<leaf name>/records.jsonl   every candidate with each judge's raw output and score
  leaves/<leaf name>/stats.json      candidates, passed per step, acceptance, tokens, time
  skills_train_msgs.jsonl, skills_recipe.yaml
  knowledge_train_msgs.jsonl, knowledge_recipe.yaml
Everything but stats.json is a pure function of the inputs (leaf, pipeline,
teacher, seed, sampling options), so a resumed run writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lab_hooks.models.types import Backend
from lab_hooks.sdg.documents import (
    DocumentError, GitTree, chunk_markdown, document_root, read_documents, token_counter,
)
from lab_hooks.sdg.engine import CountingBackend, Engine, PipelineRun
from lab_hooks.sdg.pipeline import Pipeline, load_pipeline
from lab_hooks.sdg.policy import JudgePolicy, judge_policy, sample_examples
from lab_hooks.store import Store, artifact_key
from lab_hooks.taxonomy.leaf import Kind, Leaf

SYSTEM_PROMPT = "You are a helpful, respectful and honest assistant."


class LeafSkipped(Exception):
    """A leaf the pipelines cannot start on (no seeds, no documents)."""


@dataclass
class LeafResult:
    leaf: str  # the leaf's name (taxonomy directory)
    blob_sha: str
    pipeline: str
    status: str  # "ok" | "empty" (all filtered) | "error"
    accepted: int = 0
    candidates: int = 0
    filtered_by: str | None = None  # status "empty": the step that removed the last samples
    message: str = ""
    dataset: Path | None = None  # messages.jsonl
    records: Path | None = None
    stats: dict = field(default_factory=dict)
    artifact: str | None = None  # store key of the leaf's data (messages, records, stats)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def report(self) -> dict:
        """The leaf as the PR comment shows it: counts, what each filter dropped, whether the judges
        filtered, and a few accepted and dropped samples (each dropped one with why)."""
        steps = self.stats.get("steps", {})
        dropped = {name: st["candidates"] - st["passed"] for name, st in steps.items()
                   if st.get("candidates", 0) > st.get("passed", 0)}
        return {"leaf": self.leaf, "candidates": self.candidates, "accepted": self.accepted, "dropped": dropped,
                "status": "ok" if self.ok else (self.message or self.status), "artifact": self.artifact,
                "judges": self.stats.get("judges"), "examples": sample_examples(self.records)}


@dataclass
class MixConfig:
    """Samples taken per leaf dataset = ratio x its size (>1 repeats samples); no cap."""

    skills_ratio: float = 1.0
    knowledge_ratio: float = 1.0
    seed: int = 42


@dataclass
class GenerateResult:
    leaves: list[LeafResult]
    mixes: dict[str, Path]  # "skills"/"knowledge" -> *_train_msgs.jsonl (only kinds that have leaves)
    recipes: dict[str, Path]
    calls: int  # teacher chat() calls made by this run (0 when everything was cached)
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    engine_seconds: float  # of which inside the teacher's inference engine (backend.chat)

    @property
    def exit_code(self) -> int:
        return 0 if all(r.ok for r in self.leaves) else 1


def pipeline_for(leaf: Leaf) -> str:
    if leaf.kind is Kind.KNOWLEDGE:
        return "knowledge"
    if leaf.grounded or any(e.context for e in leaf.examples):
        return "grounded_skills"
    return "freeform_skills"


def _skill_seeds(leaf: Leaf, grounded: bool) -> list[dict]:
    seeds = []
    for e in leaf.examples:
        if not (e.question.strip() and e.answer.strip()) or (grounded and not (e.context or "").strip()):
            continue
        seed = {"task_description": leaf.task_description or "", "seed_question": e.question.strip(),
                "seed_answer": e.answer.strip()}
        if grounded:
            seed["seed_context"] = (e.context or "").strip()
        seeds.append(seed)
    return seeds


def _knowledge_seeds(leaf: Leaf, teacher, taxonomy_root: Path | None, cache_dir: Path,
                     tree: GitTree | None) -> tuple[list[dict], dict]:
    if not leaf.document:
        raise LeafSkipped("knowledge leaf without a document section")
    examples = {}
    for e in leaf.examples:  # the first Q/A of each seed context is that context's example
        if e.context and e.question.strip() and e.answer.strip():
            examples.setdefault(e.context, e)
    if not examples:
        raise LeafSkipped("no seed context with a question and an answer")
    if tree is not None:  # the leaf's folder in the commit, relative to the taxonomy
        leaf_dir = Path(leaf.path).parent
    else:
        leaf_dir = (taxonomy_root / leaf.path).parent if taxonomy_root else Path(leaf.file).parent
    try:
        root = document_root(leaf.document, leaf_dir, taxonomy_root, cache_dir, tree)
        docs, skipped = read_documents(leaf.document, root)
    except DocumentError as exc:
        raise LeafSkipped(str(exc)) from None
    count, exact = token_counter(teacher)
    chunks = [c for _, text in docs for c in chunk_markdown(text, count)]
    icl = list(examples.values())
    seeds = [{
        "domain": leaf.domain or "", "document_outline": leaf.document_outline or "", "chunk": chunk,
        "icl_context": icl[i % len(icl)].context.strip(), "icl_question": icl[i % len(icl)].question.strip(),
        "icl_answer": icl[i % len(icl)].answer.strip(),
    } for i, chunk in enumerate(chunks)]
    info = {"documents": [n for n, _ in docs], "skipped_documents": skipped, "chunks": len(chunks),
            "tokenizer": "teacher" if exact else "approximate (4 chars/token)"}
    return seeds, info


def _sample_id(leaf: Leaf, pipeline_sha: str, teacher: str, seed: int, unit: str) -> str:
    digest = hashlib.sha256(json.dumps([leaf.blob_sha, pipeline_sha, teacher, seed, unit]).encode()).hexdigest()
    return str(uuid.UUID(hex=digest[:32]))


def _write(path: Path, data: str) -> None:
    """Atomically: a reader (or a resumed run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if not _running(stale.name.split(".")[-3]):  # a killed run's; a live writer's stays
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _running(pid: str) -> bool:
    """Whether `pid` (as written in a tmp file's name) is a live process of this machine."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _messages(leaf: Leaf, run: PipelineRun, pipeline, teacher: str, seed: int) -> list[dict]:
    rows = []
    for s in run.accepted:
        metadata = {"dataset": leaf.name, "leaf_blob": leaf.blob_sha, "pipeline": pipeline.name,
                    "teacher": teacher, "unit": s.unit, "system_prompt": SYSTEM_PROMPT}
        rows.append({
            "id": _sample_id(leaf, pipeline.sha, teacher, seed, s.unit),
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": pipeline.user.substitute(s.fields).strip()},
                {"role": "assistant", "content": pipeline.assistant.substitute(s.fields).strip()},
            ],
            "metadata": json.dumps(metadata, ensure_ascii=False),
            "unmask": leaf.kind is Kind.KNOWLEDGE,
        })
    return rows


def _records(run: PipelineRun) -> list[dict]:
    return [{"unit": s.unit, "status": "accepted" if s.dropped_by is None else "dropped",
             "dropped_by": s.dropped_by, "fields": s.fields, "trace": s.trace} for s in run.samples]


def _build(leaf: Leaf, pipeline: Pipeline, seeds: list[dict], engine: Engine, policy: JudgePolicy, info: dict,
           dest: Path) -> None:
    """Run the engine for one leaf and write its artifact files into `dest`."""
    start = time.perf_counter()
    requests_before = engine.teacher.conversations
    references = [e.question.strip() for e in leaf.examples if e.question.strip()]
    run = engine.run(seeds, leaf_blob=leaf.blob_sha, references=references, label=leaf.name)
    rows = _messages(leaf, run, pipeline, engine.teacher.spec, engine.seed)
    _write(dest / "messages.jsonl", _jsonl(rows))
    _write(dest / "records.jsonl", _jsonl(_records(run)))
    first = pipeline.steps[0].name
    candidates = run.steps[first].candidates
    stats = {
        "leaf": leaf.name, "blob_sha": leaf.blob_sha, "pipeline": pipeline.name, "pipeline_sha": pipeline.sha,
        "teacher": engine.teacher.spec, "seed": engine.seed, "samples_per_seed": engine.samples_per_seed,
        "max_tokens": engine.max_tokens, "batch_size": engine.batch_size or pipeline.batch_size,
        "seeds": len(seeds), "candidates": candidates, "accepted": len(rows),
        "acceptance_rate": round(len(rows) / candidates, 4) if candidates else 0.0,
        "steps": {n: st.as_dict() for n, st in run.steps.items()},
        "teacher_tokens": {"prompt": run.prompt_tokens, "completion": run.completion_tokens},
        "judges": policy.as_dict(),
        "status": "ok" if rows else "empty", "filtered_by": None, "message": "", **info,
    }
    if not rows:
        emptied = next((n for n, st in run.steps.items() if st.inputs and not st.passed), first)
        st = run.steps[emptied]
        stats["filtered_by"] = emptied
        dropped = "; ".join(f"{n} dropped {s.unparseable + s.rejected} ({s.unparseable} unparseable, "
                            f"{s.rejected} rejected)" for n, s in run.steps.items() if s.unparseable + s.rejected)
        stats["message"] = f"all samples filtered out: step {emptied!r} kept 0 of {st.candidates} ({dropped})"
    stats["built_with"] = {"teacher_requests": engine.teacher.conversations - requests_before,
                           "seconds": round(time.perf_counter() - start, 3)}
    _write(dest / "stats.json", json.dumps(stats, indent=2) + "\n")


def generate_leaf(leaf: Leaf, engine_args: dict, teacher: CountingBackend, store: Store, out_dir: Path,
                  taxonomy_root: Path | None, cache_dir: Path, pipelines: dict[str, Pipeline],
                  tree: GitTree | None = None) -> LeafResult:
    """One leaf through its pipeline, as a store artifact copied into `out_dir/leaves/<leaf>/`.

    The artifact's key holds everything that determines the data (leaf blob,
    pipeline file, teacher, seed, sampling options, the seeds themselves, which
    for knowledge include the document chunks): built once, reused after.
    """
    name = pipeline_for(leaf)
    pipeline = pipelines.get(name) or load_pipeline(name)
    result = LeafResult(leaf=leaf.name, blob_sha=leaf.blob_sha, pipeline=name, status="error")
    info: dict = {}
    try:
        if name == "knowledge":
            seeds, info = _knowledge_seeds(leaf, teacher, taxonomy_root, cache_dir, tree)
        else:
            seeds = _skill_seeds(leaf, name == "grounded_skills")
        if not seeds:
            raise LeafSkipped("no usable seed example (each needs a question and an answer"
                              + (", and a context" if name == "grounded_skills" else "") + ")")
    except LeafSkipped as exc:
        result.message = str(exc)
        return result
    args = dict(engine_args)
    policy = judge_policy(teacher.spec, args.pop("judges", "auto"))
    engine = Engine(pipeline, teacher, store, judges_applied=policy.applied, **args)
    key = artifact_key("sdg-leaf", leaf=leaf.blob_sha, name=leaf.name, pipeline=pipeline.sha, teacher=teacher.spec,
                       seed=engine.seed, samples_per_seed=engine.samples_per_seed, max_tokens=engine.max_tokens,
                       batch_size=engine.batch_size, seeds=seeds, system_prompt=SYSTEM_PROMPT,
                       judges_applied=policy.applied)
    artifact = store.ensure(key, lambda dest: _build(leaf, pipeline, seeds, engine, policy, info, dest),
                            kind="sdg-leaf",
                            meta={"leaf": leaf.name, "pipeline": name, "teacher": teacher.spec})
    leaf_out = out_dir / "leaves" / leaf.name
    for file in ("messages.jsonl", "records.jsonl", "stats.json"):
        _write(leaf_out / file, (artifact / file).read_text(encoding="utf-8"))
    stats = json.loads((artifact / "stats.json").read_text(encoding="utf-8"))
    result.dataset, result.records = leaf_out / "messages.jsonl", leaf_out / "records.jsonl"
    result.artifact = key
    result.status, result.filtered_by, result.message = stats["status"], stats["filtered_by"], stats["message"]
    result.accepted, result.candidates, result.stats = stats["accepted"], stats["candidates"], stats
    return result


def mix(results: list[LeafResult], kinds: dict[str, str], config: MixConfig, out_dir: Path) -> tuple[dict, dict]:
    """`skills_train_msgs.jsonl` / `knowledge_train_msgs.jsonl` and the recipe beside each."""
    mixes, recipes = {}, {}
    for kind, ratio in (("skills", config.skills_ratio), ("knowledge", config.knowledge_ratio)):
        members = [r for r in results if kinds[r.leaf] == kind and r.dataset is not None]
        if not members:
            continue
        rows, entries = [], []
        for r in sorted(members, key=lambda r: r.leaf):
            data = [json.loads(line) for line in r.dataset.read_text(encoding="utf-8").splitlines()]
            size = round(ratio * len(data))
            rng = random.Random(f"{config.seed}:{r.leaf}")
            picked = rng.sample(data, min(size, len(data)))
            picked += [rng.choice(data) for _ in range(size - len(picked))] if data else []
            rows += picked
            entries.append({"leaf": r.leaf, "path": str(r.dataset.relative_to(out_dir)), "available": len(data),
                            "sampling_size": size})
        random.Random(config.seed).shuffle(rows)
        mixes[kind] = out_dir / f"{kind}_train_msgs.jsonl"
        recipes[kind] = out_dir / f"{kind}_recipe.yaml"
        _write(mixes[kind], _jsonl(rows))
        recipe = {"mix": kind, "ratio": ratio, "seed": config.seed, "total": len(rows), "datasets": entries}
        _write(recipes[kind], yaml.safe_dump(recipe, sort_keys=False))
    return mixes, recipes


def generate_leaves(leaves: list[Leaf], teacher: Backend | str, store: Store, *, out_dir: Path,
                    samples_per_seed: int = 3, seed: int = 0, max_tokens: int | None = None,
                    batch_size: int | None = None, judges: str = "auto",
                    taxonomy_root: Path | None = None, documents_dir: Path | None = None,
                    tree: GitTree | None = None,
                    mix_config: MixConfig | None = None, pipelines: dict[str, Pipeline] | None = None,
                    progress: bool = False) -> GenerateResult:
    """Generate, filter and mix synthetic data for `leaves` (see the package docstring).

    `tree`: the commit the leaves were read from, whose tree in-repo documents are
    read from (else from the checkout under `taxonomy_root`). `pipelines` replaces
    shipped pipelines by name (a taxonomy's own prompts). `judges`: whether judge steps
    filter (lab_hooks.sdg.policy: "auto", "apply", "record").
    """
    start = time.perf_counter()
    counting = teacher if isinstance(teacher, CountingBackend) else CountingBackend(teacher)
    calls0, p0, c0, s0 = counting.calls, counting.prompt_tokens, counting.completion_tokens, counting.seconds
    if documents_dir is None:
        from lab_hooks.home import lab_home

        documents_dir = lab_home() / "documents"
    out_dir = Path(out_dir)
    args = {"samples_per_seed": samples_per_seed, "seed": seed, "max_tokens": max_tokens,
            "batch_size": batch_size, "judges": judges, "progress": progress}
    ordered = sorted(leaves, key=lambda lf: lf.name)

    def one(leaf: Leaf) -> LeafResult:
        return generate_leaf(leaf, args, counting, store, out_dir, taxonomy_root, documents_dir, pipelines or {},
                             tree)

    if counting.concurrent and len(ordered) > 1:  # a server: every leaf's batches in flight together
        with ThreadPoolExecutor(len(ordered), thread_name_prefix="sdg-leaf") as pool:
            results = list(pool.map(one, ordered))
    else:  # an in-process model: one leaf after another (the engine batches within a step)
        results = [one(leaf) for leaf in ordered]
    kinds = {leaf.name: "knowledge" if leaf.kind is Kind.KNOWLEDGE else "skills" for leaf in leaves}
    mixes, recipes = mix(results, kinds, mix_config or MixConfig(), out_dir)
    return GenerateResult(
        leaves=results, mixes=mixes, recipes=recipes, calls=counting.calls - calls0,
        prompt_tokens=counting.prompt_tokens - p0, completion_tokens=counting.completion_tokens - c0,
        seconds=time.perf_counter() - start, engine_seconds=counting.seconds - s0,
    )
