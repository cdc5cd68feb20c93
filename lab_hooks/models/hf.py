"""The transformers backend: batched chat generation on a local HF checkpoint.

Prompts are sorted by length and generated in left-padded batches (little padding,
one forward pass per step for the whole batch), then put back in input order.
"""

from __future__ import annotations

from pathlib import Path

from lab_hooks.models.scoring import answer_tokens
from lab_hooks.models.types import (
    Completion, Conversation, SamplingParams, SpecError, TokenLogprob, check_fits, template_options,
)

DEFAULTS = {"batch_size": 16, "dtype": "auto", "device": "auto"}
SCORE_TOKENS = 4096  # rows x kept positions per scoring forward pass (bounds the logits' memory)


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

        from transformers import LogitsProcessorList

        padded = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
        sampling = params.temperature > 0
        recorder = _LogprobRecorder(params.logprobs) if params.logprobs else None
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
                logits_processor=LogitsProcessorList([recorder]) if recorder else None,
            )
        generated = output[:, padded["input_ids"].shape[1]:]
        steps = recorder.finish(generated) if recorder else None
        generated = generated.tolist()
        return [
            [self._completion(len(prompt), generated[row * params.n + k], params,
                              steps and [step[row * params.n + k] for step in steps])
             for k in range(params.n)]
            for row, prompt in enumerate(prompts)
        ]

    def _completion(self, prompt_tokens: int, ids: list[int], params: SamplingParams,
                    steps: list | None) -> Completion:
        """Trim padding after the end, decode, and cut at the first stop string (excluded, as OpenAI does)."""
        end = next((i for i, t in enumerate(ids) if t in self.eos_ids or t == self.tokenizer.pad_token_id),
                   len(ids))
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
        logprobs = None if steps is None else tuple(
            TokenLogprob(self._text(token), logprob, tuple((self._text(t), lp) for t, lp in top))
            for token, (logprob, top) in zip(ids[:end], steps[:end]))
        cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
        if cut >= 0:  # rows stopped by a string are padded after it: the pad is not theirs
            return Completion(text[:cut], prompt_tokens, end, "stop", logprobs)
        if end < len(ids):  # the end-of-turn token counts, as in vLLM
            return Completion(text, prompt_tokens, end + 1, "stop", logprobs)
        return Completion(text, prompt_tokens, end, "length", logprobs)

    def _text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def answer_logprobs(self, conversations: list[Conversation]) -> list[list[float]]:
        """Teacher-forced log-probabilities of each final answer's tokens (see models.types.Scorer).

        Left-padded batches with explicit position ids; logits are computed only for the
        batch's last `keep` positions, where every row's answer is.
        """
        import torch

        rows = [answer_tokens(self.tokenizer, c) for c in conversations]
        check_fits(conversations, [len(ids) for ids, _ in rows], 0, self.context_length)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) - rows[i][1])
        results: list[list[float]] = [[] for _ in rows]
        start = 0
        while start < len(order):
            keep = len(rows[order[start]][0]) - rows[order[start]][1] + 1
            batch = [order[start]]
            for i in order[start + 1:start + self.batch_size]:
                wider = len(rows[i][0]) - rows[i][1] + 1
                if wider * (len(batch) + 1) > SCORE_TOKENS:
                    break
                batch.append(i)
                keep = wider
            start += len(batch)
            padded = self.tokenizer.pad({"input_ids": [rows[i][0] for i in batch]}, return_tensors="pt")
            mask = padded["attention_mask"]
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(input_ids=padded["input_ids"].to(self.device), attention_mask=mask.to(self.device),
                                    position_ids=positions.to(self.device), logits_to_keep=keep).logits
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = padded["input_ids"][:, -(keep - 1):].to(self.device)
            picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
            for row, i in enumerate(batch):
                span = len(rows[i][0]) - rows[i][1]
                results[i] = picked[row, picked.shape[1] - span:].tolist()
        return results


class _LogprobRecorder:
    """A logits processor that notes, per generation step, the model's log-probabilities.

    transformers runs the processors a caller passes before temperature and top-p, so
    these are the model's own distribution, as vLLM and OpenAI report it. Per step it
    keeps the `k` likeliest tokens and, once the next step shows which token was
    chosen, that token's log-probability: a few numbers per row, never a vocabulary.
    """

    def __init__(self, k: int):
        self.k = k
        self.tops: list = []
        self.chosen: list = []
        self.previous = None

    def __call__(self, input_ids, scores):
        import torch

        logprobs = torch.log_softmax(scores.float(), dim=-1)
        if self.previous is not None:
            self.chosen.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.tops.append(logprobs.topk(self.k, dim=-1))
        self.previous = logprobs
        return scores

    def finish(self, generated) -> list[list[tuple[float, list[tuple[int, float]]]]]:
        """Per step, per row: (chosen token's log-probability, [(token id, log-probability)] likeliest first)."""
        if self.previous is not None and generated.shape[1]:
            self.chosen.append(self.previous.gather(1, generated[:, -1:].to(self.previous.device)).squeeze(1))
        steps = []
        for chosen, top in zip(self.chosen, self.tops):
            ids, values = top.indices.tolist(), top.values.tolist()
            steps.append([(c, list(zip(i, v))) for c, i, v in zip(chosen.tolist(), ids, values)])
        return steps


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
