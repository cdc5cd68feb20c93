"""Any OpenAI-compatible chat-completions server (vLLM, TGI, llama.cpp, a hosted API).

Requests go out on one bounded thread pool per backend, round-robin across the
spec's replicas; `chat` may be called from several threads at once (`concurrent`),
and all their requests share that pool, so `concurrency` is what is in flight;
a request's retries move on through the replicas, so a retry after a dead one lands elsewhere.
Transient failures (connection errors, timeouts, 429/5xx, replies that are not a
chat completion) are retried with exponential backoff; after the budget the whole
batch fails with one line naming the input, so a partial batch is never returned
as if it were complete.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from lab_hooks.models.types import (
    BackendError, Completion, ContextLengthError, Conversation, SamplingParams, TokenLogprob, is_prefill,
    template_options,
)

DEFAULTS = {"concurrency": 32, "timeout": 120.0, "retries": 4, "backoff": 0.5, "api_key_env": "OPENAI_API_KEY"}
FINISH_REASONS = ("stop", "length")
MODEL_IDENTITY = ("id", "root", "parent", "max_model_len", "owned_by")  # of a /v1/models entry


class TransientError(Exception):
    """A failure worth another attempt (maybe on another replica)."""


class OpenAIBackend:
    concurrent = True  # chat() is safe to call from several threads (see lab_hooks.sdg.engine)

    def __init__(self, spec: str, endpoints: list[str], model: str, concurrency: int = 32,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 0.5,
                 api_key_env: str = "OPENAI_API_KEY"):
        import httpx

        self.spec = spec
        self.model = model
        self.endpoints = endpoints
        self.concurrency = int(concurrency)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        key = os.environ.get(str(api_key_env), "")
        self.client = httpx.Client(
            timeout=httpx.Timeout(float(timeout), connect=min(float(timeout), 10.0)),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="openai")

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        from tqdm.auto import tqdm

        # One request per completion: per-completion token counts, and n spreads over replicas.
        jobs = [(index, k) for index in range(len(conversations)) for k in range(params.n)]
        results: list[list[Completion | None]] = [[None] * params.n for _ in conversations]
        with tqdm(total=len(jobs), desc=self.spec, unit="req", disable=None) as bar:
            futures = {self.pool.submit(self._complete, index, conversations[index], params, k): (index, k)
                       for index, k in jobs}
            try:
                for future in as_completed(futures):
                    index, k = futures[future]
                    results[index][k] = future.result()
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results  # type: ignore[return-value]  # every slot is filled, or we raised

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.client.close()

    def served_model(self) -> dict:
        """The server's `/v1/models` entry for our model, reduced to what names the weights
        (`id`, `root` path, `parent`, `max_model_len`, `owned_by`; not timestamps), and the
        same on every replica. It is what the server says, not a hash of the weights."""
        import httpx

        entries = []
        for endpoint in self.endpoints:
            url = f"{endpoint}/models"
            try:
                response = self.client.get(url)
                response.raise_for_status()
                listed = [m for m in response.json()["data"] if isinstance(m, dict)]
            except httpx.HTTPError as exc:
                raise BackendError(f"{self.spec}: {url}: cannot list the served models ({exc})") from None
            except (ValueError, KeyError, TypeError):
                raise BackendError(f"{self.spec}: {url}: reply is not a model list "
                                   f"({_excerpt(response.text)})") from None
            entry = next((m for m in listed if m.get("id") == self.model), None)
            if entry is None:
                served = ", ".join(str(m.get("id")) for m in listed) or "none"
                raise BackendError(f"{self.spec}: {url} serves no model {self.model!r} (it serves: {served})")
            entries.append({k: entry[k] for k in MODEL_IDENTITY if k in entry})
        different = next((e for e in entries if e != entries[0]), None)
        if different is not None:
            raise BackendError(f"{self.spec}: the replicas serve different models: "
                               f"{json.dumps(entries[0])} vs {json.dumps(different)}")
        return entries[0]

    def _complete(self, index: int, conversation: Conversation, params: SamplingParams, k: int) -> Completion:
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        body = {
            "model": self.model, "messages": conversation, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed + k, "n": 1,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs:  # OpenAI allows up to 20 alternatives; vLLM's server as many as it is started with
            body.update(logprobs=True, top_logprobs=params.logprobs)
        if is_prefill(conversation):  # vLLM's server honours these; plain OpenAI has no prefill
            body.update(template_options(conversation))
        attempts = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff, max=30),
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        with self._lock:
            first = next(self._turn)
        try:
            for attempt in attempts:
                with attempt:  # each retry moves on to the next replica
                    endpoint = self.endpoints[(first + attempt.retry_state.attempt_number - 1) % len(self.endpoints)]
                    return self._post(endpoint, index, conversation, body)
        except TransientError as exc:
            raise BackendError(f"{self.spec}: conversation {index} failed after {self.retries + 1} "
                               f"attempts; last: {exc}") from None
        raise AssertionError("unreachable")

    def _post(self, endpoint: str, index: int, conversation: Conversation, body: dict) -> Completion:
        import httpx

        url = f"{endpoint}/chat/completions"
        try:
            response = self.client.post(url, json=body)
        except httpx.TimeoutException:
            raise TransientError(f"{url}: timed out") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{url}: HTTP {response.status_code} {_excerpt(response.text)}")
        if response.status_code >= 400:
            message = _error_message(response)
            if "context length" in message or "maximum context" in message or "max_tokens" in message:
                raise ContextLengthError(index, conversation, f"{endpoint} refused it: {message}")
            raise BackendError(f"{self.spec}: conversation {index}: {url}: HTTP {response.status_code} {message}")
        return _parse_completion(url, response)


def _parse_completion(url: str, response) -> Completion:
    """A chat completion, or TransientError saying why the reply is not one."""
    try:
        reply = response.json()
        choice = reply["choices"][0]
        text = choice["message"]["content"]
        reason = choice["finish_reason"]
        usage = reply["usage"]
        prompt_tokens, completion_tokens = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise TransientError(f"{url}: reply is not a chat completion ({type(exc).__name__}: "
                             f"{_excerpt(response.text)})") from None
    if not isinstance(text, str) or reason not in FINISH_REASONS:
        raise TransientError(f"{url}: reply is not a finished chat completion (finish_reason {reason!r})")
    return Completion(text, prompt_tokens, completion_tokens, reason, _logprobs(choice.get("logprobs")))


def _logprobs(block) -> tuple[TokenLogprob, ...] | None:
    """`choices[0].logprobs.content` as TokenLogprobs; None when the server sent none (or nothing usable)."""
    content = block.get("content") if isinstance(block, dict) else None
    if not isinstance(content, list):
        return None
    try:
        return tuple(TokenLogprob(str(t["token"]), float(t["logprob"]),
                                  tuple((str(a["token"]), float(a["logprob"])) for a in t.get("top_logprobs") or ()))
                     for t in content)
    except (KeyError, TypeError, ValueError):
        return None


def _error_message(response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else None
        return " ".join(str(message or response.json().get("message") or response.text).split())
    except (ValueError, AttributeError):
        return _excerpt(response.text)


def _excerpt(text: str, width: int = 120) -> str:
    text = " ".join(text.split())
    return json.dumps(text if len(text) <= width else text[:width] + "…")
