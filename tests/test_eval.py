"""evaluate() end to end on the real MT-Bench files, with scripted backends for the models.

The backends here answer and judge by rule (instant, predictable), so every
number the evaluation reports can be checked; test_eval_embedded.py runs the
same path with the real embedded model.
"""

import json
from pathlib import Path

import jsonschema
import pytest

import lab_hooks.eval as eval_pkg

from lab_hooks.assets import mtbench_data_dir
from lab_hooks.eval import Settings, evaluate, render
from lab_hooks.eval.judge import RATING_PREFILL
from lab_hooks.eval.questions import mtbench_set
from lab_hooks.eval.run import judge_answers
from lab_hooks.eval.cli import main
from lab_hooks.models.types import Completion, is_prefill
from lab_hooks.store import Store
from lab_hooks.taxonomy.load import parse_leaf

SKILL = """version: 2
task_description: Write limericks.
created_by: someone
seed_examples:
{examples}
"""


def skill_leaf(path, n=5, context=False):
    examples = "".join(
        f"  - question: Question {i} of {path}?\n    answer: Answer {i}.\n"
        + (f"    context: Context {i}.\n" if context else "")
        for i in range(n)
    )
    return parse_leaf(SKILL.format(examples=examples).encode(), f"compositional_skills/{path}/qna.yaml")


class Model:
    """Answers every question with `words`; records what it was asked."""

    def __init__(self, spec, words):
        self.spec, self.words, self.calls = spec, words, []

    def chat(self, conversations, params):
        self.calls.append((conversations, params))
        return [[Completion(f"{self.words} ({len(conv)} messages)", 10, 4, "stop")] * params.n
                for conv in conversations]


def judged_answer(prompt):
    """The answer a FastChat single-grading prompt asks about (turn 2: the last one)."""
    if "[The Start of Assistant's Answer]" in prompt:
        return prompt.split("[The Start of Assistant's Answer]")[1].split("[The End of Assistant's Answer]")[0]
    return prompt.rsplit("### Assistant A:", 1)[1].split("<|The End of Assistant A's Conversation")[0]


def mtbench_references() -> dict[str, str]:
    """MT-Bench's first-turn questions -> GPT-4's reference answer, where there is one."""
    data = mtbench_data_dir()
    with open(data / "question.jsonl") as fh:
        questions = {r["question_id"]: r["turns"][0] for r in map(json.loads, fh)}
    with open(data / "reference_answer" / "gpt-4.jsonl") as fh:
        return {questions[r["question_id"]]: r["choices"][0]["turns"][0] for r in map(json.loads, fh)}


def judged_question(prompt):
    return prompt.split("[Question]\n", 1)[1].split("\n\n[The Start of Assistant's Answer]")[0] \
        if "[Question]\n" in prompt else None


class Judge:
    """Rates an answer 3 + 2 per 'good' in it; an answer saying 'broken' gets no rating;
    GPT-4's own reference answer to the question asked gets 9 (so it passes calibration).

    Asked to continue a prefilled answer, it writes what follows the prefill, as the backends do.
    """

    spec = "test:judge"
    references = None

    def __init__(self):
        self.calls = []
        if Judge.references is None:
            Judge.references = mtbench_references()

    def rating(self, prompt):
        answer = judged_answer(prompt)
        if answer.strip() == self.references.get(judged_question(prompt)):
            return 9
        return None if "broken" in answer else 3 + 2 * answer.count("good")

    def chat(self, conversations, params):
        self.calls.append((conversations, params))
        out = []
        for conv in conversations:
            rating = self.rating(conv[1]["content"])
            if rating is None:
                text = "I cannot say."
            elif is_prefill(conv):  # the conversation ends in "Rating: [["
                text = f"{rating}]]"
            else:
                text = f"Fine. Rating: [[{rating}]]"
            out.append([Completion(text, 100, 5, "stop")] * params.n)
        return out


class Refuses:
    """A model that must not be asked (its answers are cached)."""

    def __init__(self, spec):
        self.spec = spec

    def chat(self, conversations, params):
        raise AssertionError(f"{self.spec} was asked although cached")


FAST = Settings(quick=1, resamples=2000, max_tokens=16, judge_max_tokens=16)


def check_schema(results):
    schema = json.loads((Path(eval_pkg.__file__).parent / "results.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(results)))


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def test_mtbench_and_branch(store):
    base, cand, judge = Model("test:base", "plain"), Model("test:cand", "good"), Judge()
    new, modified = skill_leaf("writing/new"), skill_leaf("writing/changed", context=True)
    knowledge = parse_leaf(b"version: 3\ndomain: x\nseed_examples: []\n", "knowledge/x/qna.yaml")
    others = [skill_leaf(f"writing/other{i}", n=2) for i in range(6)]
    results = evaluate(base, cand, judge, [new, modified, knowledge], store, new_leaves={new.name},
                       unchanged_leaves=others, settings=FAST)

    mt = results["mtbench"]
    assert len(mt["subset"]["question_ids"]) == 8 and mt["subset"]["quick"] == 1
    assert {q["category"] for q in mt["questions"]} == set(mt["categories"])
    assert mt["overall"] == {"n_questions": 8, "base": 3.0, "candidate": 5.0, "delta": 2.0, "ci": [2.0, 2.0],
                             "verdict": "improved"}
    assert mt["categories"]["math"]["verdict"] == "insufficient data"  # one question
    assert mt["errors"]["base"] == {"judgments": 16, "errors": 0, "rate": 0.0}
    # Turn 2 is asked in the conversation holding turn 1 and the model's own answer.
    turn2 = base.calls[-1][0][0]
    assert [m["role"] for m in turn2] == ["user", "assistant", "user"]
    assert turn2[1]["content"] == "plain (1 messages)"
    # Writing is sampled at 0.7 as in FastChat, math greedily.
    assert {p.temperature for _, p in base.calls} == {0.0, 0.1, 0.7}
    # Math, reasoning and coding are judged against GPT-4's reference answers, turn 2 against both.
    prompts = [conv[1]["content"] for convs, _ in judge.calls for conv in convs]
    assert sum("### Reference answer:" in p for p in prompts) == 2 * 3
    assert sum("[The Start of Reference Answer]" in p for p in prompts) == 2 * (3 + 5 + 5 + 3 * 2)
    math = next(int(q["id"]) for q in mt["questions"] if q["category"] == "math")
    with open(mtbench_data_dir() / "reference_answer" / "gpt-4.jsonl") as fh:
        reference = next(r for r in map(json.loads, fh) if r["question_id"] == math)["choices"][0]["turns"][1]
    assert sum(reference in p for p in prompts) == 2

    branch = results["branch"]
    by_leaf = {row["leaf"]: row for row in branch["leaves"]}
    assert by_leaf[new.name]["status"] == "new" and by_leaf[new.name]["change"] == "new"
    assert by_leaf[modified.name]["status"] == "improvement" and by_leaf[modified.name]["delta"] == 2.0
    unchanged = [row for row in branch["leaves"] if row["change"] == "unchanged"]
    assert len(unchanged) == 3 and all(row["status"] == "insufficient data" for row in unchanged)
    assert branch["skipped"] == [{"leaf": "knowledge/x", "change": "modified",
                                  "reason": "knowledge leaf (branch evaluation asks skill leaves)"}]
    # A grounded seed question is asked with its context.
    asked = [conv[0]["content"] for convs, _ in cand.calls for conv in convs]
    assert any(a.startswith("Context 0.\n\nQuestion 0 of writing/changed") for a in asked)

    check_schema(results)
    broken = json.loads(json.dumps(results))
    broken["mtbench"]["overall"]["verdict"] = "better"
    with pytest.raises(jsonschema.ValidationError):
        check_schema(broken)
    text = render(results)
    assert "| **overall** | 3.00 | 5.00 | +2.00 | [+2.00, +2.00] | improved | 8 |" in text
    assert "Smoke-test judge" not in text
    assert "quick subset: 1 per category" in text and "`compositional_skills/writing/new`" in text


def test_base_is_cached_across_prs_and_never_loaded(store):
    leaves = [skill_leaf("writing/a")]
    first = evaluate(Model("test:base", "plain"), Model("test:pr1", "good"), Judge(), leaves, store, settings=FAST)
    judge = Judge()
    second = evaluate(Refuses("test:base"), Model("test:pr2", "good good"), judge, leaves, store, settings=FAST)
    steps = {row["step"]: row for row in second["timings"]["steps"]}
    assert steps["base answers"]["cached"] and steps["base judgments"]["cached"]
    assert not steps["candidate answers"]["cached"]
    assert second["mtbench"]["overall"]["base"] == first["mtbench"]["overall"]["base"] == 3.0
    assert second["mtbench"]["overall"]["candidate"] == 7.0
    # Only the candidate's 8 x 2 MT-Bench turns + 5 seed questions were judged.
    assert sum(len(conv) for conv, _ in judge.calls) == 21
    # Another judge is another key: judgments are redone, answers are not.
    other = Judge()
    other.spec = "test:judge2"
    third = evaluate(Refuses("test:base"), Refuses("test:pr2"), other, leaves, store, settings=FAST)
    assert third["mtbench"]["overall"]["candidate"] == 7.0
    assert len(other.calls) == 3  # base, candidate, and the new judge's calibration


def test_same_inputs_and_seed_give_identical_numbers(tmp_path):
    def run(home, seed):
        base, cand = Model("test:base", "plain broken"), Model("test:cand", "good")
        r = evaluate(base, cand, Judge(), [skill_leaf("writing/a")], Store(tmp_path / home),
                     settings=Settings(quick=2, seed=seed, resamples=2000))
        r.pop("timings")
        return r

    first, again = run("one", 0), run("two", 0)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert run("three", 1)["mtbench"]["subset"] != first["mtbench"]["subset"]


def test_unparseable_judgments_are_counted_not_scored(store):
    results = evaluate(Model("test:base", "plain broken"), Model("test:cand", "good"), Judge(), [], store,
                       settings=FAST)
    mt = results["mtbench"]
    assert mt["errors"]["base"] == {"judgments": 16, "errors": 16, "rate": 1.0}
    assert mt["overall"]["base"] is None and mt["overall"]["verdict"] == "insufficient data"
    assert "16/16 (100.0 %)" in render(results)
    check_schema(results)


def test_judge_repeats_sample_and_report_noise(store):
    judge = Judge()
    results = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), judge, [], store,
                       settings=Settings(quick=1, judge_repeats=3, resamples=2000))
    *judged, (_, calibrating) = judge.calls
    assert {(p.n, p.temperature) for _, p in judged} == {(3, 0.7)}
    assert (calibrating.n, calibrating.temperature) == (1, 0.7)  # the calibration set is rated once per answer
    noise = results["mtbench"]["judge_noise"]["base"]
    assert noise == {"repeats": 3, "item_sd": 0.0, "overall_sd": 0.0, "overall_range": [3.0, 3.0]}
    assert results["mtbench"]["errors"]["base"]["judgments"] == 48
    check_schema(results)


def test_embedded_judge_is_called_a_smoke_test():
    from lab_hooks.eval.render import render as render_

    results = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), _EmbeddedJudge(), [], None,
                       settings=FAST)
    assert results["judge"]["smoke_test"] is True
    assert "**Smoke-test judge.**" in render_(results)


class _EmbeddedJudge(Judge):
    spec = "embedded:smollm2-135m-instruct"


def test_smoke_test_judge_is_prefilled_and_the_judgment_kept_whole(store):
    judge = _EmbeddedJudge()
    results = evaluate(Model("test:base", "plain broken"), Model("test:cand", "good"), judge, [], store,
                       settings=FAST)
    assert results["judge"]["prefill"] == RATING_PREFILL == "Rating: [["
    asked = [conv for convs, _ in judge.calls for conv in convs]
    assert len(asked) == 32 + 50  # MT-Bench (2 x 8 x 2 turns) and calibration (10 x 5) and all(conv[-1] == {"role": "assistant", "content": "Rating: [["} for conv in asked)
    mt = results["mtbench"]
    assert mt["overall"]["candidate"] == 5.0  # the judge wrote "5]]"; prefill + continuation parse
    assert mt["errors"]["base"] == {"judgments": 16, "errors": 16, "rate": 1.0}  # "Rating: [[I cannot say."
    assert "prefilled with `Rating: [[`" in render(results)
    check_schema(results)
    # What is kept is the whole judgment: prefill + what the judge wrote.
    qset = mtbench_set(mtbench_data_dir(), 1, 0)
    answers = {qset.name: [["good", "good"] for _ in qset.questions]}
    judged = judge_answers(_EmbeddedJudge(), [qset], answers, FAST, RATING_PREFILL)[qset.name]
    assert judged["judgments"][0] == [["Rating: [[5]]"], ["Rating: [[5]]"]]


def test_models_are_identified_by_their_files_pins_caller_or_name(tmp_path, store):
    from lab_hooks.eval.run import identify
    from lab_hooks.models import SpecError

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    first, source = identify(f"hf:{checkpoint}?batch_size=2")
    assert source == "files" and len(first) == 64 and identify(f"vllm:{checkpoint}") == (first, "files")
    (checkpoint / "model.safetensors").write_bytes(b"retrained")
    assert identify(f"hf:{checkpoint}")[0] != first
    assert identify("embedded:smollm2-135m-instruct") == identify("hf:smollm2-135m-instruct")
    assert identify("embedded:smollm2-135m-instruct")[1] == "pinned"
    with pytest.raises(SpecError, match="not a checkpoint dir"):
        identify(f"hf:{tmp_path / 'nowhere'}")
    results = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), Judge(), [], store,
                       settings=FAST, ids={"base": "main-checkpoint-key"})
    assert results["models"]["base"] == {"spec": "test:base", "id": "main-checkpoint-key", "id_source": "caller"}
    assert results["models"]["candidate"]["id_source"] == results["judge"]["id_source"] == "spec"
    text = render(results)
    assert "The base `test:base`" not in text
    assert "The judge `test:judge` is identified by its spec, not by its weights" in text
    assert not any(row["step"].startswith("load") for row in results["timings"]["steps"])


def test_prefill_is_a_setting_and_part_of_the_judgment_key(store):
    def run(judge, **settings):
        return evaluate(Model("test:base", "plain"), Model("test:cand", "good"), judge, [], store,
                        settings=Settings(quick=1, resamples=2000, **settings))

    default = run(Judge())
    assert default["judge"]["prefill"] is None  # a real judge explains first, as in FastChat
    judge = Judge()
    prefilled = run(judge, judge_prefill=True)
    assert prefilled["judge"]["prefill"] == RATING_PREFILL and len(judge.calls) == 3  # judged again: base, calibration too
    assert prefilled["mtbench"]["overall"]["delta"] == default["mtbench"]["overall"]["delta"] == 2.0
    embedded = _EmbeddedJudge()
    assert run(embedded, judge_prefill=False)["judge"]["prefill"] is None
    assert all(conv[-1]["role"] == "user" for convs, _ in embedded.calls for conv in convs)


@pytest.mark.parametrize("argv,message", [
    (["--base-model", "a", "--candidate", "b", "--quick", "0"], "--quick must be at least 1"),
    (["--base-model", "a", "--candidate", "b", "--resamples", "100"], "too few"),
    (["--base-model", "a", "--candidate", "b", "--no-mtbench"], "nothing to evaluate"),
    (["--base-model", "a", "--candidate", "b", "--min-effect", "-1"], "must not be negative, got -1"),
])
def test_cli_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_output_flags_follow_the_one_convention(capsys):
    from lab_hooks.eval.cli import _parser

    shown = _parser().format_help()
    assert "--format {text,json}" in shown and "--results FILE" in shown
    assert "--json" not in shown and "--markdown" not in shown  # the old spellings: hidden, for one release
    base = ["--base-model", "a", "--candidate", "b"]
    assert _parser().parse_args([*base, "--json", "r.json"]).results == Path("r.json")
    assert _parser().parse_args([*base, "--results", "r.json"]).results == Path("r.json")
    assert main([*base, "--format", "markdown"]) == 2
    assert "invalid choice: 'markdown'" in capsys.readouterr().err


def test_cli_bad_model_spec_is_bad_input(capsys):
    assert main(["--base-model", "nonsense", "--candidate", "b"]) == 1
    err = capsys.readouterr().err
    assert "model spec 'nonsense'" in err and err.count("\n") == 1


def test_cli_broken_leaf_says_where(tmp_path, capsys):
    bad = tmp_path / "compositional_skills" / "x" / "qna.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("version: 2\nseed_examples: [\n")
    assert main(["--base-model", "embedded:smollm2-135m-instruct", "--candidate", "hf:/nowhere",
                 "--branch-leaves", str(bad), "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:" in err and err.count("\n") == 1


def test_branch_leaves_from_git(tmp_path):
    import subprocess

    from lab_hooks.eval.leaves import InputError, from_git

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    def write(path, n):
        file = tmp_path / "compositional_skills" / path / "qna.yaml"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(SKILL.format(examples="".join(f"  - question: Q{i}?\n    answer: A{i}.\n" for i in range(n))))

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    write("a", 5)
    write("b", 5)
    git("add", "-A")
    git("commit", "-qm", "base")
    write("a", 6)
    write("c", 5)
    git("add", "-A")
    git("commit", "-qm", "pr")
    branch = from_git(tmp_path, "HEAD~1", "HEAD")
    assert sorted(leaf.name for leaf in branch.changed) == ["compositional_skills/a", "compositional_skills/c"]
    assert branch.new == {"compositional_skills/c"}
    assert [leaf.name for leaf in branch.unchanged] == ["compositional_skills/b"]
    assert len(next(leaf for leaf in branch.changed if leaf.name.endswith("/a")).examples) == 6
    with pytest.raises(InputError):
        from_git(tmp_path, "no-such-ref", "HEAD")


class ShortContextJudge(Judge):
    """Refuses (as the real backends do, before generating) any prompt mentioning 'long'."""

    def chat(self, conversations, params):
        from lab_hooks.models.types import ContextLengthError

        for index, conv in enumerate(conversations):
            if "writing/long" in conv[1]["content"]:
                raise ContextLengthError(index, conv, "prompt too long")
        return super().chat(conversations, params)


def test_judge_context_overflow_is_a_counted_error(store):
    leaves = [skill_leaf("writing/long", n=5), skill_leaf("writing/fine", n=5)]
    results = evaluate(Model("test:base", "plain"), Model("test:cand", "good"), ShortContextJudge(), leaves, store,
                       settings=FAST, mtbench=False)
    by_leaf = {row["leaf"]: row for row in results["branch"]["leaves"]}
    assert by_leaf["compositional_skills/writing/long"]["errors"]["base"] == {"judgments": 5, "errors": 5, "rate": 1.0}
    assert by_leaf["compositional_skills/writing/fine"]["delta"] == 2.0
    assert results["mtbench"] is None and results["branch"]["errors"]["candidate"]["errors"] == 5
    check_schema(results)


class SlowModel(Model):
    """Takes its time answering, so that two evaluations overlap."""

    def chat(self, conversations, params):
        import time

        time.sleep(0.2)
        return super().chat(conversations, params)


def test_two_runners_evaluating_against_one_base_answer_it_once(new_store_url):
    """Two PRs evaluated at once against the same base (two runners sharing a store, on both
    backends): one answers and judges the base, the other waits for it and reuses the records."""
    import threading

    leaves = [skill_leaf("writing/a")]
    solo = SlowModel("test:base", "plain")
    evaluate(solo, Model("test:pr0", "good"), Judge(), leaves, Store(new_store_url("solo")), settings=FAST)
    base, url, results = SlowModel("test:base", "plain"), new_store_url("shared"), {}

    def pr(n):
        results[n] = evaluate(base, Model(f"test:pr{n}", "good" * n), Judge(), leaves, Store(url), settings=FAST)

    threads = [threading.Thread(target=pr, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(base.calls) == len(solo.calls) > 0  # answered once, not twice
    cached = sorted({row["step"]: row for row in r["timings"]["steps"]}["base answers"]["cached"]
                    for r in results.values())
    assert cached == [False, True]
    assert results[1]["mtbench"]["overall"]["base"] == results[2]["mtbench"]["overall"]["base"] == 3.0
