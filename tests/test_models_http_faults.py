"""The OpenAI-compatible HTTP backend against servers that fail: retries, budgets, no partial results."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_hooks.models import BackendError, ContextLengthError, SamplingParams, load_backend

FAKE = Path(__file__).with_name("fake_openai_server.py")
QUICK = "retries=2&backoff=0.01&timeout=2"


@pytest.fixture
def fake_server():
    started = []

    def start(mode, *args):
        proc = subprocess.Popen([sys.executable, str(FAKE), mode, *args], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def ask(text):
    return [{"role": "user", "content": text}]


def questions(n):
    return [ask(f"question {i}") for i in range(n)]


def test_replicas_share_the_load_and_a_dead_one_is_routed_around(fake_server):
    (a, url_a), (b, url_b) = fake_server("ok"), fake_server("ok")
    dead = "http://127.0.0.1:9/v1"  # discard port: connection refused
    backend = load_backend(f"openai:{url_a},{url_b},{dead}?{QUICK}&concurrency=4#smol")
    results = backend.chat(questions(12), SamplingParams(max_tokens=8))
    assert [r[0].text for r in results] == [f"echo: question {i}" for i in range(12)]
    assert results[0][0].completion_tokens == 3 and results[0][0].finish_reason == "stop"
    a.kill(), b.kill()
    served = [len(p.stdout.read().split("served")) - 1 for p in (a, b)]
    assert sum(served) == 12 and min(served) >= 4  # round-robin, dead replica's share retried


def test_only_a_prefill_asks_the_server_to_continue_the_final_message(fake_server):
    _, url = fake_server("ok")
    prefill = ask("question 0") + [{"role": "assistant", "content": "Rating: [["}]
    results = load_backend(f"openai:{url}?{QUICK}#m").chat([ask("question 1"), prefill], SamplingParams())
    assert [r[0].text for r in results] == ["echo: question 1", "continue: Rating: [["]


def test_transient_500s_are_retried(fake_server):
    _, url = fake_server("flaky")
    results = load_backend(f"openai:{url}?{QUICK}&concurrency=1#m").chat(questions(3), SamplingParams())
    assert [r[0].text for r in results] == ["echo: question 0", "echo: question 1", "echo: question 2"]


@pytest.mark.parametrize("mode, message", [
    ("error500", 'HTTP 500 "{\\"error\\": {\\"message\\": \\"engine crashed\\"}}"'),
    ("garbage", "reply is not a chat completion"),
    ("slow", "timed out"),
])
def test_persistent_failure_is_one_clear_error_after_the_budget(fake_server, mode, message):
    _, url = fake_server(mode)
    backend = load_backend(f"openai:{url}?retries=1&backoff=0.01&timeout=0.5#m")
    started = time.monotonic()
    with pytest.raises(BackendError) as exc:
        backend.chat(questions(2), SamplingParams())
    text = str(exc.value)
    assert "failed after 2 attempts; last: " in text and message in text and "\n" not in text
    assert time.monotonic() - started < 10


def test_server_killed_mid_batch_fails_the_whole_batch(fake_server):
    server, url = fake_server("slow", "0.3")
    backend = load_backend(f"openai:{url}?retries=2&backoff=0.2&timeout=5&concurrency=2#m")
    killer = subprocess.Popen([sys.executable, "-c", f"import os,time; time.sleep(1.0); os.kill({server.pid}, 9)"])
    with pytest.raises(BackendError, match="failed after 3 attempts; last: .*(ConnectError|RemoteProtocolError|ReadError)"):
        backend.chat(questions(20), SamplingParams())
    killer.wait()
    served = server.stdout.read().count("served")
    assert 0 < served < 20  # it died mid-batch, and what it did serve was not returned as a result


def test_context_overflow_from_the_server_names_the_input(fake_server):
    _, url = fake_server("context")
    with pytest.raises(ContextLengthError) as exc:
        load_backend(f"openai:{url}?{QUICK}#m").chat([ask("a very long document")], SamplingParams())
    assert str(exc.value).startswith("conversation 0 ('a very long document'): ")
    assert "maximum context length is 2048" in str(exc.value)
