"""The transformers backend, for real, on the embedded SmolLM2 (a few tokens each)."""

import pytest
from greedy import assert_near_greedy

from lab_hooks.models import ContextLengthError, SamplingParams

pytestmark = pytest.mark.slow


def ask(text):
    return [{"role": "user", "content": text}]


def test_batched_greedy_answers_stay_with_their_inputs(hf_backend):
    questions = [ask("What is the capital of France?"),
                 ask("Please tell me, in one short sentence, what is the capital city of Japan?")]
    first = hf_backend.chat(questions, SamplingParams(max_tokens=10))
    assert [len(c) for c in first] == [1, 1]
    assert "Paris" in first[0][0].text and "Tokyo" in first[1][0].text
    assert first[0][0].finish_reason == "stop" and 0 < first[0][0].completion_tokens < 10
    assert first[1][0].prompt_tokens > first[0][0].prompt_tokens > 10
    assert hf_backend.chat(questions, SamplingParams(max_tokens=10)) == first  # deterministic


def test_length_stop_strings_and_seeded_sampling(hf_backend):
    question = [ask("Count from 1 to 10, one number per line.")]
    [[cut]] = hf_backend.chat(question, SamplingParams(max_tokens=3))
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 3)
    [[stopped]] = hf_backend.chat(question, SamplingParams(max_tokens=24, stop=("4",)))
    assert stopped.finish_reason == "stop" and "3" in stopped.text and "4" not in stopped.text
    sampled = SamplingParams(temperature=1.0, max_tokens=6, n=3, seed=7)
    [three] = hf_backend.chat(question, sampled)
    assert len(three) == 3 and hf_backend.chat(question, sampled) == [three]


def test_an_input_that_cannot_fit_is_named_before_any_generation(hf_backend):
    huge = ask("Summarize this: " + "lorem ipsum dolor " * 3000)
    with pytest.raises(ContextLengthError) as exc:
        hf_backend.chat([ask("hi"), huge], SamplingParams(max_tokens=16))
    message = str(exc.value)
    assert message.startswith("conversation 1 ('Summarize this: lorem ipsum") and "8192" in message
    assert "\n" not in message and exc.value.index == 1


def test_a_prefilled_answer_is_continued_not_restarted(hf_backend):
    question = ask("What is the capital of France?")
    prefill = question + [{"role": "assistant", "content": "The capital of France is"}]
    assert hf_backend.tokenizer.decode(hf_backend.prompt_ids(prefill)).endswith("assistant\nThe capital of France is")
    answer, continued = hf_backend.chat([question, prefill], SamplingParams(max_tokens=6))
    # Beside a prefill (padded into one batch) the plain question is still answered greedily:
    # every token is the model's best alone, within a tolerance (batch shapes round differently).
    assert_near_greedy(hf_backend, question, answer[0].text)
    assert_near_greedy(hf_backend, prefill, continued[0].text)
    assert "Paris" in continued[0].text and "capital" not in continued[0].text
    assert continued[0].prompt_tokens == len(hf_backend.prompt_ids(prefill))
