"""Generation on the real embedded teacher: outputs, filters, caching, kill -9 and resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from importlib import resources
from pathlib import Path

import pytest

from lab_hooks.sdg import MixConfig, generate_leaves
from lab_hooks.sdg.engine import CountingBackend
from lab_hooks.sdg.policy import sample_examples
from lab_hooks.store import Store
from lab_hooks.taxonomy.load import load_leaf_file

pytestmark = pytest.mark.slow
EMBEDDED = "embedded:smollm2-135m-instruct"
FAST = {"samples_per_seed": 2, "max_tokens": 16, "batch_size": 8}

FREEFORM = """\
version: 3
created_by: tester
task_description: Write a short haiku about a season.
seed_examples:
  - question: Write a haiku about the first snow of winter.
    answer: |
      White hush on the roofs
      footprints fill before morning
      the kettle is on
  - question: Write a haiku about a hot summer afternoon.
    answer: |
      Cicadas buzzing
      the asphalt shimmers and sighs
      shade under the oak
  - question: Write a haiku about falling autumn leaves.
    answer: |
      Red maple letting go
      each leaf a small goodbye
      the path turns to flame
"""

GROUNDED = """\
version: 3
created_by: tester
task_description: Extract the date of the meeting from the message.
seed_examples:
  - context: Hi all, the budget review moves to Tuesday 14 May at 10:00 in room B.
    question: On what date is the budget review?
    answer: Tuesday 14 May.
  - context: Reminder - our quarterly planning meeting is on 3 June, right after lunch.
    question: When is the quarterly planning meeting?
    answer: On 3 June.
"""

KNOWLEDGE = """\
version: 3
created_by: tester
domain: engineering
document_outline: A short history of the Harbour Bridge
seed_examples:
  - context: The Harbour Bridge opened in 1932 and carries rail, vehicle and foot traffic.
    questions_and_answers:
      - question: When did the Harbour Bridge open?
        answer: It opened in 1932.
      - question: What traffic does the Harbour Bridge carry?
        answer: Rail, vehicle and foot traffic.
      - question: Is the Harbour Bridge only for cars?
        answer: No, it also carries trains and pedestrians.
document:
  repo: {repo}
  commit: {commit}
  patterns:
    - "{pattern}"
"""

DOC = """\
# Harbour Bridge

The Harbour Bridge is a steel arch bridge. Its arch rises 134 metres above the water.

## Construction

Work began in 1924. About 1,400 workers built it over eight years, using six million rivets.

## Opening

The bridge opened on 19 March 1932 with a ceremony attended by hundreds of thousands of people.
"""


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def write_taxonomy(root: Path) -> list[Path]:
    docs = root.parent / f"{root.name}-docs"
    docs.mkdir(parents=True)
    git(docs, "init", "-q")
    (docs / "bridge.md").write_text(DOC)
    git(docs, "add", ".")
    git(docs, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "doc")
    files = {
        "compositional_skills/writing/freeform/haiku/qna.yaml": FREEFORM,
        "compositional_skills/extraction/grounded/dates/qna.yaml": GROUNDED,
        "knowledge/engineering/bridges/qna.yaml": KNOWLEDGE.format(repo=f"file://{docs}", commit=git(docs, "rev-parse", "HEAD"),
                                                                    pattern="*.md"),
    }
    paths = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def teacher(hf_backend):
    return hf_backend  # the session's one embedded model (tests/conftest.py)


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("taxonomy")
    write_taxonomy(root)
    return root


def leaves_of(root: Path, which=None):
    paths = sorted(root.glob("*/**/qna.yaml"))
    return [load_leaf_file(p, root) for p in paths if which is None or which in str(p)]


def tree(out: Path) -> dict[str, bytes]:
    """Every output file's bytes except the timing stats."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "stats.json"}


@pytest.fixture(scope="module", autouse=True)
def allow_file_repos():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_HOOKS_ALLOW_FILE_REPOS", "1")
        yield


@pytest.fixture(scope="module")
def first_run(teacher, taxonomy, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    out = home / "out"
    counting = CountingBackend(teacher)
    store = Store(home / "store")
    result = generate_leaves(leaves_of(taxonomy), counting, store, out_dir=out, taxonomy_root=taxonomy,
                             documents_dir=home / "docs", **FAST)
    yield result, counting, store, home, out
    store.close()


def test_a_teacher_named_by_spec_is_loaded_on_first_use_only():
    """A rerun served from the store never pays for loading the teacher."""
    from lab_hooks.models.types import SamplingParams, SpecError

    lazy = CountingBackend("hf:/no/such/checkpoint")
    assert lazy.spec == "hf:/no/such/checkpoint" and lazy.calls == 0
    assert not lazy.concurrent and CountingBackend("openai:http://127.0.0.1:9/v1#m").concurrent  # nothing loaded
    with pytest.raises(SpecError, match="not a checkpoint dir"):
        lazy.chat([[{"role": "user", "content": "hi"}]], SamplingParams())


def test_every_leaf_gets_messages_records_and_stats(first_run):
    result, counting, _, _, out = first_run
    assert counting.calls > 0 and result.calls == counting.calls
    assert [r.pipeline for r in result.leaves] == ["grounded_skills", "freeform_skills", "knowledge"]
    for r in result.leaves:
        assert r.status in ("ok", "empty"), r.message
        stats = json.loads((r.dataset.parent / "stats.json").read_text())
        first = next(iter(stats["steps"].values()))
        assert stats["candidates"] == first["candidates"] == first["inputs"] * 2
        for step in stats["steps"].values():  # every candidate is accounted for
            assert step["candidates"] == step["passed"] + step["unparseable"] + step["rejected"]
        assert stats["teacher_tokens"]["prompt"] > 0 and stats["teacher_tokens"]["completion"] > 0
        records = [json.loads(x) for x in r.records.read_text().splitlines()]
        assert len(records) == stats["candidates"]
        assert sum(rec["status"] == "accepted" for rec in records) == r.accepted == stats["accepted"]
        judged = [t for rec in records for t in rec["trace"] if "judge" in t["step"]]
        assert judged and all("raw" in t and t["verdict"] in ("kept", "rejected", "unparseable") for t in judged)
        assert all(("score" in t) == (t["verdict"] != "unparseable") for t in judged)
        # The embedded teacher is too small to judge: its verdicts are recorded, and drop nothing.
        assert stats["judges"]["applied"] is False and all(t["applied"] is False for t in judged)
        for name, step in stats["steps"].items():
            if "judge" in name:
                assert step["passed"] == step["candidates"] and step["rejected"] == step["unparseable"] == 0
                assert step["would_drop"] == sum(t["verdict"] != "kept" for t in judged if t["step"] == name)
        if r.status == "empty":
            assert r.filtered_by in stats["steps"] and r.filtered_by in r.message and r.accepted == 0
        for line in r.dataset.read_text().splitlines():
            row = json.loads(line)
            assert set(row) == {"id", "messages", "metadata", "unmask"}
            assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
            assert json.loads(row["metadata"])["dataset"] == r.leaf
            assert row["unmask"] is (r.pipeline == "knowledge")
    assert result.exit_code == (0 if all(r.ok for r in result.leaves) else 1)


def test_knowledge_chunks_come_from_the_pinned_document(first_run):
    result, *_ = first_run
    knowledge = result.leaves[2]
    stats = json.loads((knowledge.dataset.parent / "stats.json").read_text())
    assert stats["documents"] == ["bridge.md"] and stats["chunks"] >= 1 and stats["tokenizer"] == "teacher"


def test_mixes_hold_every_accepted_sample_with_their_recipe(first_run):
    result, _, _, _, out = first_run
    skills = [r for r in result.leaves if r.pipeline != "knowledge"]
    recipe = (out / "skills_recipe.yaml").read_text()
    mixed = (out / "skills_train_msgs.jsonl").read_text().splitlines()
    assert len(mixed) == sum(r.accepted for r in skills)
    for r in skills:
        assert r.leaf in recipe and f"sampling_size: {r.accepted}" in recipe
    assert (out / "knowledge_train_msgs.jsonl").exists() and (out / "knowledge_recipe.yaml").exists()


def test_second_run_asks_the_teacher_nothing_and_writes_the_same_bytes(first_run, teacher, taxonomy):
    result, _, store, home, out = first_run
    before = tree(out)
    again = CountingBackend(teacher)
    out2 = home / "out2"
    second = generate_leaves(leaves_of(taxonomy), again, store, out_dir=out2, taxonomy_root=taxonomy,
                             documents_dir=home / "docs", **FAST)
    assert again.calls == 0 and second.calls == 0
    assert tree(out2) == before


def test_mix_ratio_and_no_cap(first_run, tmp_path):
    from lab_hooks.sdg.generate import mix

    result, _, _, _, out = first_run
    kinds = {r.leaf: "knowledge" if r.pipeline == "knowledge" else "skills" for r in result.leaves}
    # The embedded teacher's judges only record (lab_hooks.sdg.policy): what survives parsing and
    # dedup is kept, so the skill leaves always have samples; none at all is a failure.
    assert [r.leaf for r in result.leaves if r.accepted and r.pipeline != "knowledge"]
    mixes, _ = mix(result.leaves, kinds, MixConfig(skills_ratio=3.0, knowledge_ratio=3.0), out)
    total = sum(len(p.read_text().splitlines()) for p in mixes.values())
    assert total == 3 * sum(r.accepted for r in result.leaves)


def test_all_filtered_leaf_is_reported_with_its_filter(teacher, taxonomy, tmp_path):
    """A question judge that can never keep anything (score must be 9): status empty, non-zero exit."""
    from lab_hooks.sdg.pipeline import parse_pipeline

    text = resources.files("lab_hooks.sdg").joinpath("pipelines", "freeform_skills.yaml").read_text()
    strict = parse_pipeline(text.replace("keep: {equals: 1}", "keep: {equals: 9}").encode(), "freeform_skills")
    store = Store(tmp_path / "store")
    try:
        result = generate_leaves(leaves_of(taxonomy, "haiku"), teacher, store, out_dir=tmp_path / "out",
                                 taxonomy_root=taxonomy, pipelines={"freeform_skills": strict}, judges="apply", **FAST)
    finally:
        store.close()
    (r,) = result.leaves
    assert r.status == "empty" and result.exit_code == 1
    assert r.stats["steps"]["question_judge"]["passed"] == 0
    assert r.filtered_by in ("questions", "question_judge") and r.filtered_by in r.message
    assert r.dataset.read_text() == ""
    assert "skills" in result.mixes  # an empty leaf is listed in the recipe, never silently dropped
    assert f"{r.leaf}" in result.recipes["skills"].read_text()
    shown = sample_examples(r.records)  # what the PR comment shows the contributor
    assert shown["accepted"] == [] and shown["dropped"]
    for sample in shown["dropped"]:
        assert sample["dropped_by"] in ("questions", "question_judge") and sample["reason"]
        if sample["dropped_by"] == "question_judge":
            assert sample["question"] and sample["reason"].endswith("kept only = 9")


KILLS = 10
KILL_ARGS = {"samples_per_seed": 2, "max_tokens": 12, "batch_size": 2}


def _fork(run) -> int:
    """`run()` in a forked child: the session's loaded model, no re-import, a real process to kill."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import torch

            torch.set_num_threads(1)  # OpenMP's thread pool does not survive fork
            run()
            code = 0
        finally:
            os._exit(code)
    return pid


def _generate_in(teacher, taxonomy: Path, home: Path, out: Path):
    def run():
        store = Store(home)
        try:
            generate_leaves(leaves_of(taxonomy, "haiku"), teacher, store, out_dir=out, taxonomy_root=taxonomy,
                            **KILL_ARGS)
        finally:
            store.close()
    return run


def test_kill_9_at_random_points_then_resume_gives_identical_outputs(teacher, taxonomy, tmp_path):
    start = time.perf_counter()
    _, status = os.waitpid(_fork(_generate_in(teacher, taxonomy, tmp_path / "ref-store", tmp_path / "ref")), 0)
    full = time.perf_counter() - start
    assert status == 0
    expected = tree(tmp_path / "ref")
    assert expected

    rng = random.Random(1234)
    home, out = tmp_path / "store", tmp_path / "resumed"
    killed = 0
    for _ in range(KILLS):
        pid = _fork(_generate_in(teacher, taxonomy, home, out))
        time.sleep(rng.uniform(0.2, 2.0) * full / KILLS)
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            killed += 1
            os.waitpid(pid, 0)
    assert killed >= KILLS // 2, f"only {killed} kills landed before the run finished: too little was tested"
    _, status = os.waitpid(_fork(_generate_in(teacher, taxonomy, home, out)), 0)
    assert status == 0
    assert tree(out) == expected


class SerializedTeacher:
    """The embedded model behind a lock, declared `concurrent`: the engine's threads really
    overlap and their batches finish in any order, while each batch's completions are the
    model's alone (its sampling seed is process-global, hence the lock)."""

    concurrent = True

    def __init__(self, backend):
        self.backend, self.spec = backend, backend.spec
        self._model, self._count = threading.Lock(), threading.Lock()
        self.waiting = self.most_waiting = 0

    def chat(self, conversations, params):
        with self._count:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            with self._model:
                return self.backend.chat(conversations, params)
        finally:
            with self._count:
                self.waiting -= 1


def test_concurrent_leaves_and_batches_write_what_a_sequential_run_writes(teacher, taxonomy, tmp_path):
    leaves = [leaf for leaf in leaves_of(taxonomy) if "knowledge" not in leaf.path]
    serialized = SerializedTeacher(teacher)
    for backend, name in ((teacher, "sequential"), (serialized, "concurrent")):
        store = Store(tmp_path / name / "store")
        try:
            generate_leaves(leaves, backend, store, out_dir=tmp_path / name / "out", taxonomy_root=taxonomy,
                            samples_per_seed=1, max_tokens=8, batch_size=1)  # a batch per seed
        finally:
            store.close()
    assert serialized.most_waiting >= 3  # two leaves and several batches of a step were in flight together
    assert tree(tmp_path / "concurrent" / "out") == tree(tmp_path / "sequential" / "out")


def test_output_write_removes_a_killed_writers_tmp_but_not_a_live_ones(tmp_path):
    from lab_hooks.sdg.generate import _write

    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = tmp_path / f".stats.json.{dead.pid}.0badc0de.tmp"
    live = tmp_path / f".stats.json.{os.getppid()}.0c0ffee0.tmp"  # our parent: alive while we run
    killed.write_text("half")
    live.write_text("in flight")
    _write(tmp_path / "stats.json", "{}\n")
    assert (tmp_path / "stats.json").read_text() == "{}\n"
    assert not killed.exists() and live.read_text() == "in flight"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["stats.json", live.name])


def test_a_judge_too_small_to_judge_is_recorded_not_applied(teacher, taxonomy, tmp_path):
    """The same haiku leaf with judges applied and only recorded, on one store: the judge's
    verdicts are the same computation both times (served from the store the second time), so
    what "record" would have dropped is exactly what "apply" dropped; "record" drops nothing."""
    store = Store(tmp_path / "store")
    runs = {}
    try:
        for mode in ("apply", "auto"):  # auto: the embedded teacher is a smoke-test judge -> record
            runs[mode] = generate_leaves(leaves_of(taxonomy, "haiku"), teacher, store, out_dir=tmp_path / mode,
                                         taxonomy_root=taxonomy, judges=mode, **FAST).leaves[0]
    finally:
        store.close()
    applied, recorded = runs["apply"], runs["auto"]
    assert applied.stats["judges"] == {"applied": True, "reason": ""}
    assert recorded.stats["judges"]["applied"] is False and "too small to judge" in recorded.stats["judges"]["reason"]
    judge = recorded.stats["steps"]["question_judge"]
    assert judge["applied"] is False and judge["passed"] == judge["candidates"] > 0
    assert judge["rejected"] == judge["unparseable"] == 0
    strict = applied.stats["steps"]["question_judge"]
    assert strict["applied"] is True and judge["would_drop"] == strict["rejected"] + strict["unparseable"]
    records = [json.loads(line) for line in recorded.records.read_text().splitlines()]
    verdicts = [t for rec in records for t in rec["trace"] if t["step"] == "question_judge"]
    assert all(t["applied"] is False for t in verdicts)
    assert sum(t["verdict"] != "kept" for t in verdicts) == judge["would_drop"]
    assert not any(rec["dropped_by"] in ("question_judge", "response_judge") for rec in records)
    assert recorded.accepted > 0
