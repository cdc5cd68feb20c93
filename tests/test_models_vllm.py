"""The real vLLM engine, offline and behind a live `vllm serve`, on the embedded SmolLM2."""

import pytest
from greedy import assert_near_greedy

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
    # Other kernels, other rounding: each token vLLM picked is transformers' best within a tolerance.
    for conversation, [answer] in zip(asked, engine):
        assert_near_greedy(hf_backend, conversation, answer.text)
    assert [r[0].prompt_tokens for r in engine] == [r[0].prompt_tokens for r in reference]
    assert (engine[1][0].finish_reason, engine[1][0].completion_tokens) == ("length", 10)
    # A prefill is continued (its own call to llm.chat), in its place in the batch.
    assert "Paris" in engine[2][0].text and "capital" not in engine[2][0].text


def test_offline_engine_stop_strings_seeded_sampling_and_context(vllm_backend):
    [[stopped]] = vllm_backend.chat(QUESTIONS[1:], SamplingParams(max_tokens=24, stop=("4",)))
    assert stopped.finish_reason == "stop" and "3" in stopped.text and "4" not in stopped.text
    sampled = SamplingParams(temperature=1.0, max_tokens=6, n=3, seed=11)
    [three] = vllm_backend.chat(QUESTIONS[:1], sampled)
    assert len(three) == 3 and vllm_backend.chat(QUESTIONS[:1], sampled) == [three]
    with pytest.raises(ContextLengthError, match=r"^conversation 2 \('Summarize: lorem ipsum.*2048 tokens"):
        vllm_backend.chat(QUESTIONS + [LONG], SamplingParams(max_tokens=16))


def test_http_backend_against_live_vllm_server(vllm_server, vllm_backend, hf_backend):
    backend = load_backend(f"openai:{vllm_server}?timeout=120#smollm2")
    greedy = SamplingParams(max_tokens=10)
    asked = QUESTIONS + [PREFILL]
    served = backend.chat(asked, greedy)
    offline = vllm_backend.chat(asked, greedy)
    # The server batches its requests as they come: greedy within a tolerance, not the same bytes.
    for conversation, [answer] in zip(asked, served):
        assert_near_greedy(hf_backend, conversation, answer.text)
    assert "Paris" in served[0][0].text and "Paris" in served[2][0].text
    assert [r[0].prompt_tokens for r in served] == [r[0].prompt_tokens for r in offline]
    assert (served[1][0].finish_reason, served[1][0].completion_tokens) == ("length", 10)
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


def test_the_engine_gets_explicit_kv_cache_bytes_and_a_one_line_refusal_when_memory_is_short(embedded_model_dir):
    from lab_hooks.models import BackendError
    from lab_hooks.models.vllm_engine import KV_CACHE_TOKENS, engine_defaults

    settings = engine_defaults({}, embedded_model_dir)
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 dims, key and value, float32
    assert settings["kv_cache_memory_bytes"] == KV_CACHE_TOKENS * 2 * 30 * 3 * 64 * 4
    assert "gpu_memory_utilization" not in settings
    assert "kv_cache_memory_bytes" not in engine_defaults({"gpu_memory_utilization": 0.5}, embedded_model_dir)
    with pytest.raises(BackendError) as exc:  # refused before vLLM starts an engine process
        load_backend(f"vllm:{embedded_model_dir}?kv_cache_memory_bytes={2**50}")
    assert "not enough free memory for the vLLM engine" in str(exc.value) and "\n" not in str(exc.value)
