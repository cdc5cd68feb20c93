"""The real vLLM engine, offline and behind a live `vllm serve`, on the embedded SmolLM2."""

import pytest

from lab_hooks.models import ContextLengthError, SamplingParams, load_backend

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUESTIONS = [[{"role": "user", "content": "What is the capital of France?"}],
             [{"role": "user", "content": "Count from 1 to 10, one number per line."}]]
PREFILL = QUESTIONS[0] + [{"role": "assistant", "content": "The capital of France is"}]
LONG = [{"role": "user", "content": "Summarize: " + "lorem ipsum dolor " * 1000}]


def test_offline_engine_answers_like_transformers(vllm_backend, hf_backend):
    greedy = SamplingParams(max_tokens=10)
    asked = QUESTIONS + [PREFILL]
    engine, reference = vllm_backend.chat(asked, greedy), hf_backend.chat(asked, greedy)
    assert "Paris" in engine[0][0].text and engine[0][0].finish_reason == "stop"
    assert engine[0][0].text == reference[0][0].text
    assert [r[0].prompt_tokens for r in engine] == [r[0].prompt_tokens for r in reference]
    assert (engine[1][0].finish_reason, engine[1][0].completion_tokens) == ("length", 10)
    # A prefill is continued (its own call to llm.chat), in its place in the batch.
    assert "Paris" in engine[2][0].text and engine[2][0].text == reference[2][0].text
    assert engine[2][0].prompt_tokens == reference[2][0].prompt_tokens


def test_offline_engine_stop_strings_seeded_sampling_and_context(vllm_backend):
    [[stopped]] = vllm_backend.chat(QUESTIONS[1:], SamplingParams(max_tokens=24, stop=("4",)))
    assert stopped.finish_reason == "stop" and "3" in stopped.text and "4" not in stopped.text
    sampled = SamplingParams(temperature=1.0, max_tokens=6, n=3, seed=11)
    [three] = vllm_backend.chat(QUESTIONS[:1], sampled)
    assert len(three) == 3 and vllm_backend.chat(QUESTIONS[:1], sampled) == [three]
    with pytest.raises(ContextLengthError, match=r"^conversation 2 \('Summarize: lorem ipsum.*2048 tokens"):
        vllm_backend.chat(QUESTIONS + [LONG], SamplingParams(max_tokens=16))


def test_http_backend_against_live_vllm_server(vllm_server, vllm_backend):
    backend = load_backend(f"openai:{vllm_server}?timeout=120#smollm2")
    greedy = SamplingParams(max_tokens=10)
    served = backend.chat(QUESTIONS + [PREFILL], greedy)
    offline = vllm_backend.chat(QUESTIONS + [PREFILL], greedy)
    assert [r[0].text for r in served] == [r[0].text for r in offline]
    assert [(r[0].prompt_tokens, r[0].completion_tokens, r[0].finish_reason) for r in served] == \
        [(r[0].prompt_tokens, r[0].completion_tokens, r[0].finish_reason) for r in offline]
    [[stopped]] = backend.chat(QUESTIONS[1:], SamplingParams(max_tokens=24, stop=("4",)))
    assert stopped.finish_reason == "stop" and "4" not in stopped.text
    with pytest.raises(ContextLengthError, match=r"^conversation 1 \('Summarize: lorem ipsum.*refused it"):
        backend.chat([QUESTIONS[0], LONG], SamplingParams(max_tokens=16))


def test_seeded_prompts_over_one_step_budget_keep_the_cpu_engine_alive(vllm_server, vllm_backend):
    """vLLM's CPU worker died ('CPU Generator does not use offset') when it split the prompt
    of a seeded request over two steps: 8 prompts of ~600 tokens overflow a step's default
    budget (server 2048, offline 4096 tokens), so without our defaults one gets split."""
    notes = [[{"role": "user", "content": f"Note {i}: " + "the tide comes in and goes out again. " * 70
               + "Summarize the note."}] for i in range(8)]
    seeded = SamplingParams(temperature=1.0, max_tokens=4, seed=3)
    offline = vllm_backend.chat(notes, seeded)
    served = load_backend(f"openai:{vllm_server}?timeout=300#smollm2").chat(notes, seeded)
    for results in (offline, served):
        assert len(results) == 8 and all(r[0].prompt_tokens > 500 for r in results)
        assert sum(r[0].prompt_tokens for r in results) > 4096
