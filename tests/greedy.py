"""Greedy answers compared across computations that float rounding may tell apart.

Two greedy decodings of one model under different batch shapes, padding or CPU
kernels (ATEN_CPU_CAPABILITY, vLLM vs transformers) may pick different tokens
wherever the top two are nearly tied, and then go on differently. What must hold
everywhere: each token one side chose is (nearly) the best token under the
other side's model given the same prefix. That is checked by teacher-forcing the
text through the transformers model, within TOLERANCE nats of its argmax.
"""

from __future__ import annotations

# bf16 and float32 kernels of one 135M model disagree on log-probabilities by a few
# hundredths of a nat; a wrong or garbled token is typically several nats below the best.
TOLERANCE = 0.5


def greedy_gaps(backend, conversation: list[dict], text: str) -> list[float]:
    """Per token of `text` continuing `conversation`: nats below the best token under `backend`'s model."""
    import torch

    prompt = backend.prompt_ids(conversation)
    answer = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not answer:
        return []
    ids = torch.tensor([prompt + answer], device=backend.device)
    with torch.inference_mode():
        logits = backend.model(ids).logits[0, len(prompt) - 1:-1].float()
    logp = logits.log_softmax(-1)
    chosen = logp[torch.arange(len(answer)), torch.tensor(answer)]
    return (logp.max(-1).values - chosen).tolist()


def assert_near_greedy(backend, conversation: list[dict], text: str, tolerance: float = TOLERANCE) -> None:
    gaps = greedy_gaps(backend, conversation, text)
    worst = max(range(len(gaps)), key=gaps.__getitem__, default=None)
    assert worst is None or gaps[worst] <= tolerance, (
        f"{text!r}: token {worst} is {gaps[worst]:.3f} nats below the model's best (tolerance {tolerance})")
