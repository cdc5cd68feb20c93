"""The transformers backend: batched chat generation on a local HF checkpoint.

Prompts are sorted by length and generated in left-padded batches (little padding,
one forward pass per step for the whole batch), then put back in input order.
"""

from __future__ import annotations

from pathlib import Path

from lab_hooks.models.types import (
    Completion, Conversation, SamplingParams, SpecError, check_fits, template_options,
)

DEFAULTS = {"batch_size": 16, "dtype": "auto", "device": "auto"}


class TransformersBackend:
    def __init__(self, spec: str, path: Path, batch_size: int = 16, dtype: str = "auto", device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (Path(path) / "config.json").is_file():  # a hub name or a typo, never a download
            raise SpecError(f"model spec {spec!r}: {path} is not a checkpoint dir (no config.json)")
        self.spec = spec
        self.batch_size = int(batch_size)
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype),
                                                          local_files_only=True).to(self.device)
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = set(eos) | {self.tokenizer.eos_token_id}
        self.context_length = self.model.config.max_position_embeddings
        if 0 < (self.tokenizer.model_max_length or 0) < self.context_length:
            self.context_length = self.tokenizer.model_max_length

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, **template_options(conversation))
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        import torch
        from tqdm.auto import tqdm

        prompts = [self.prompt_ids(c) for c in conversations]
        check_fits(conversations, [len(p) for p in prompts], params.max_tokens, self.context_length)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        torch.manual_seed(params.seed)
        with tqdm(total=len(prompts), desc=self.spec, unit="conv", disable=None) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                for index, completions in zip(batch, self._generate([prompts[i] for i in batch], params)):
                    results[index] = completions
                bar.update(len(batch))
        return results

    def _generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        import torch

        padded = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
        sampling = params.temperature > 0
        with torch.inference_mode():
            output = self.model.generate(
                **padded,
                max_new_tokens=params.max_tokens,
                do_sample=sampling,
                temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling else None,
                top_k=None,
                num_return_sequences=params.n,
                stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        generated = output[:, padded["input_ids"].shape[1]:].tolist()
        return [
            [self._completion(len(prompt), generated[row * params.n + k], params) for k in range(params.n)]
            for row, prompt in enumerate(prompts)
        ]

    def _completion(self, prompt_tokens: int, ids: list[int], params: SamplingParams) -> Completion:
        """Trim padding after the end, decode, and cut at the first stop string (excluded, as OpenAI does)."""
        end = next((i for i, t in enumerate(ids) if t in self.eos_ids or t == self.tokenizer.pad_token_id),
                   len(ids))
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
        if cut >= 0:  # rows stopped by a string are padded after it: the pad is not theirs
            return Completion(text[:cut], prompt_tokens, end, "stop")
        if end < len(ids):  # the end-of-turn token counts, as in vLLM
            return Completion(text, prompt_tokens, end + 1, "stop")
        return Completion(text, prompt_tokens, end, "length")


def _pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_dtype(dtype: str, device: str) -> str:
    """bfloat16 where the hardware does it natively, else float32 (bf16 emulation on CPU is slow)."""
    if dtype != "auto":
        return dtype
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_bf16() else "float32"


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
