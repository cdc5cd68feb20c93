"""A tiny randomly initialised Llama student for training tests (seconds on CPU).

It takes the tokenizer and chat template of the real student (SmolLM2-135M-Instruct),
so rendering and masking are exercised exactly as in production.
"""

from __future__ import annotations

from pathlib import Path


def build(path: Path, tokenizer_dir: Path, seed: int = 0, heads: int = 4) -> Path:
    """Save a 2-layer, hidden-64 Llama with `tokenizer_dir`'s tokenizer into `path`.

    `heads` attention heads (half as many key/value heads): 2 makes heads of 32 dims, the
    smallest vLLM's CPU attention runs."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def sample(i: int, unmask: bool = False, system: bool = False) -> dict:
    """A short chat sample about a sum; `i` varies its numbers and lengths."""
    a, b = i % 17, i % 5 + 1
    messages = [
        {"role": "user", "content": f"What is {a} plus {b}?" + " Explain." * (i % 4)},
        {"role": "assistant", "content": f"{a} plus {b} is {a + b}." + " Because counting." * (i % 3)},
    ]
    if system:
        messages.insert(0, {"role": "system", "content": "You answer sums."})
    return {"id": f"s{i}", "messages": messages, "metadata": {}, "unmask": unmask}


SAMPLES = [sample(i) for i in range(48)]


def weights(checkpoint: Path) -> dict:
    """The tensors of an exported checkpoint's model.safetensors."""
    from safetensors.torch import load_file

    return load_file(Path(checkpoint) / "model.safetensors")


def write_generated(root: Path, datasets: dict[str, list[dict]]) -> Path:
    """A `lab-hooks generate` output dir (leaves/<leaf>/messages.jsonl) holding `datasets`."""
    import json

    for leaf, rows in datasets.items():
        (root / "leaves" / leaf).mkdir(parents=True)
        (root / "leaves" / leaf / "messages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
