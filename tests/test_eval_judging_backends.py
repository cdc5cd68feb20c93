"""Each backend reports token log-probabilities, and the judge turns them into G-Eval ratings:
transformers and the vLLM engine on the embedded model, the OpenAI-compatible client against
a local server that speaks `logprobs`/`top_logprobs` and against a real `vllm serve`."""

import subprocess
import sys
from pathlib import Path

import pytest

from lab_hooks.eval.judge import LOGPROB, PARSED, RATING_PREFILL, rate
from lab_hooks.models import SamplingParams, load_backend
from lab_hooks.train.data import tokenize_sample

FAKE = Path(__file__).with_name("fake_openai_server.py")
def judge_chat(prefill=None):
    """MT-Bench's own single-answer grading prompt (FastChat's single-v1) on one answer."""
    from lab_hooks.assets import mtbench_data_dir
    from lab_hooks.eval.judge import judge_conversation, load_judge_prompts

    prompts = load_judge_prompts(mtbench_data_dir() / "judge_prompts.jsonl")
    return judge_conversation(prompts, "writing", ["What is the capital of France?"],
                              ["The capital of France is Paris."], 1, None, prefill)


JUDGED, PREFILLED = judge_chat(), judge_chat(RATING_PREFILL)
GOOD = JUDGED[:1] + [{"role": "user", "content": "What is the capital of France?"},
                     {"role": "assistant", "content": "The capital of France is Paris."}]
BAD = GOOD[:2] + [{"role": "assistant", "content": "Bananas are blue and sing in winter."}]


def check_logprobs(completion, k):
    assert completion.logprobs and len(completion.logprobs) <= completion.completion_tokens
    assert "".join(t.token for t in completion.logprobs).startswith(completion.text[:3])
    for token in completion.logprobs:
        assert token.logprob <= 0 and len(token.top) >= min(k, 2)
        assert [lp for _, lp in token.top] == sorted((lp for _, lp in token.top), reverse=True)


def check_rated(backend):
    [[judgment]] = rate(backend, [PREFILLED], SamplingParams(max_tokens=4, logprobs=20), RATING_PREFILL)
    assert judgment.scoring == LOGPROB and 1 <= judgment.rating <= 10
    assert judgment.rating != round(judgment.rating)  # an expectation, not the one digit written
    return judgment


@pytest.mark.slow
def test_transformers_reports_log_probabilities_and_scores_answers(hf_backend):
    [[c]] = hf_backend.chat([PREFILLED], SamplingParams(max_tokens=4, logprobs=5))
    check_logprobs(c, 5)
    check_rated(hf_backend)
    good, bad = hf_backend.answer_logprobs([GOOD, BAD])
    assert all(lp <= 0 for lp in good + bad)
    assert -sum(good) / len(good) + 1.0 < -sum(bad) / len(bad)  # the right answer is far likelier
    # The answer's tokens are those training's loss takes: its text, the end-of-turn token and
    # what the template writes after it, more than the bare text.
    trained = tokenize_sample({"messages": GOOD}, hf_backend.tokenizer).trained_tokens
    assert len(good) == trained > len(hf_backend.tokenizer(GOOD[-1]["content"])["input_ids"])
    [alone] = hf_backend.answer_logprobs([GOOD])
    assert alone == pytest.approx(good, abs=0.25)  # another batch, another padding: the same within rounding


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_engine_reports_log_probabilities_like_transformers(vllm_backend, hf_backend):
    [[c]] = vllm_backend.chat([PREFILLED], SamplingParams(max_tokens=4, logprobs=5))
    check_logprobs(c, 5)
    engine, reference = check_rated(vllm_backend), check_rated(hf_backend)
    assert engine.rating == pytest.approx(reference.rating, abs=0.5)
    good, bad = vllm_backend.answer_logprobs([GOOD, BAD])
    hf_good, _ = hf_backend.answer_logprobs([GOOD, BAD])
    assert len(good) == len(hf_good) and sum(good) / len(good) == pytest.approx(sum(hf_good) / len(hf_good), abs=0.1)
    assert -sum(good) / len(good) + 1.0 < -sum(bad) / len(bad)


@pytest.mark.slow
@pytest.mark.vllm
def test_openai_client_reads_logprobs_from_a_real_vllm_server(vllm_server, vllm_backend):
    backend = load_backend(f"openai:{vllm_server}?timeout=120#smollm2")
    [[c]] = backend.chat([PREFILLED], SamplingParams(max_tokens=4, logprobs=5))
    check_logprobs(c, 5)
    served = check_rated(backend)
    assert served.rating == pytest.approx(check_rated(vllm_backend).rating, abs=0.05)


@pytest.fixture
def judge_server():
    proc = subprocess.Popen([sys.executable, str(FAKE), "judge"], stdout=subprocess.PIPE, text=True)
    yield f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"
    proc.kill()
    proc.wait()


def test_openai_client_turns_top_logprobs_into_a_rating(judge_server):
    backend = load_backend(f"openai:{judge_server}?retries=0#judge")
    params = SamplingParams(max_tokens=8, logprobs=20)
    # After an explanation: the rating token's alternatives 7 (0.6), 8 (0.3), 1 (0.1); the "1" may
    # start a 10, and the server says so with even odds when asked to continue after "[[1".
    [[explained]] = rate(backend, [JUDGED], params, None)
    assert explained.text == "Fine. Rating: [[7]]" and explained.scoring == LOGPROB
    assert explained.rating == pytest.approx(0.6 * 7 + 0.3 * 8 + 0.1 * (0.5 * 10 + 0.5 * 1), abs=1e-3)
    [[prefilled]] = rate(backend, [PREFILLED], params, RATING_PREFILL)
    assert prefilled.text == "Rating: [[7]]" and prefilled.rating == pytest.approx(explained.rating, abs=1e-3)
    # Without log-probabilities asked, the written [[7]].
    [[parsed]] = rate(backend, [JUDGED], SamplingParams(max_tokens=8), None)
    assert (parsed.rating, parsed.scoring) == (7.0, PARSED)
