"""Memory plan: what each GPU holds while a model trains under FSDP2, and how many GPUs it takes.

    lab-hooks train --plan --student hf:/models/llama-3.1-8b --method full --nproc 8

Bytes per GPU with N processes, P parameters of which T train, decoder blocks of at
most B parameters (Bt trained), the rest (embeddings, final norm, LM head) R_ (Rt
trained), compute in c bytes (2 for bf16, 4 for fp32), rows of S tokens:

    parameters   4 P / N                 fp32 master weights, sharded
    gathered     c (2 B + R_)            whole while computing: the running block, the
                                         next one (prefetched) and the root
    gradients    4 T / N                 fp32 shards
    whole grads  (c + 4)(Bt + Rt)        one block's and the root's whole gradients, before
                                         and after their cast for the fp32 reduce-scatter
    optimizer    8 T / N                 AdamW's two moments, fp32, sharded
    adapters     4 A                     tensors held whole on every GPU (OSF's initial and
                                         frozen singular vectors, A numbers)
    activations  L S a, a = c (7 h + 4 kv + 4 i) + 8 h per token and layer (Llama-style
                 block: the norms keep fp32 inputs, attention q, k, v, rotary copies and
                 output, the MLP its gate, up, activation and product); with activation
                 checkpointing L S c h + S a (block inputs, one block recomputed)
    LM head      S V (c + 8 + f)         logits at trained positions (all, at worst), their fp32
                                         copy (f = 4 when c < 4, else 0), the fp32 log-softmax and
                                         its gradient

Without torchrun (one process on CPU) the model is not sharded: no gathered copies and
N = 1. `check` compares the formula with a measured peak (bench/train.py --part memory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
HEADROOM = 0.9  # of a GPU's memory the plan may fill: CUDA context, NCCL buffers, fragmentation


@dataclass(frozen=True)
class Shape:
    """What the plan needs of a model: counts from its HF config and the training method."""

    name: str
    params: int
    trainable: int
    block_params: int
    block_trainable: int
    root_params: int
    root_trainable: int
    adapter_buffers: int
    layers: int
    hidden: int
    kv: int
    intermediate: int
    vocab: int


def read_config(source: Path):
    """An HF config from a checkpoint dir or a config.json file."""
    from transformers import AutoConfig

    path = Path(source)
    if path.is_dir():
        return AutoConfig.from_pretrained(path, local_files_only=True)
    fields = json.loads(path.read_text())
    if "model_type" not in fields:
        raise ValueError(f"{path}: no model_type (not a Hugging Face config.json)")
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def model_shape(hf_config, config, name: str = "") -> Shape:
    """Count parameters on the meta device (nothing is allocated), adapters by their formulas."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    blocks = [m for m in model.modules() if type(m).__name__ in set(model._no_split_modules or ())]
    params = sum(p.numel() for p in model.parameters())
    block = max(sum(p.numel() for p in b.parameters()) for b in blocks)
    targets = [(name_, m) for name_, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name_.rsplit(".", 1)[-1] in config.lora_targets]
    in_block = {id(m) for m in blocks[0].modules()}
    trainable = block_trainable = buffers = 0
    for _, linear in targets:
        out, in_ = linear.out_features, linear.in_features
        if config.method == "lora":
            count = config.lora_r * (in_ + out)
        elif config.method == "osf":  # peft: int(min_dim * fraction) directions frozen, the rest trained
            low = min(in_, out) - int(min(in_, out) * config.osf_frozen_fraction)
            count = out * low + low + low * in_
            high = min(in_, out) - low
            buffers += count + (out * high if out > in_ else 0) + (high * in_ if in_ > out else 0)
        else:
            continue
        trainable += count
        block_trainable += count if id(linear) in in_block else 0
    if config.method == "full":
        trainable, block_trainable = params, block
    root = params - sum(sum(p.numel() for p in b.parameters()) for b in blocks)
    c = hf_config
    heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    return Shape(
        name=name, params=params, trainable=trainable, block_params=block, block_trainable=block_trainable,
        root_params=root, root_trainable=root if config.method == "full" else 0, adapter_buffers=buffers,
        layers=c.num_hidden_layers, hidden=c.hidden_size, kv=getattr(c, "num_key_value_heads", heads) * head_dim,
        intermediate=c.intermediate_size, vocab=c.vocab_size,
    )


def per_gpu(shape: Shape, processes: int, config, compute_bytes: int, sharded: bool = True) -> dict[str, int]:
    """Bytes each GPU (or process) holds at its peak, by component; see the module docstring."""
    n, c, s = processes, compute_bytes, config.max_tokens
    per_token_layer = c * (7 * shape.hidden + 4 * shape.kv + 4 * shape.intermediate) + 8 * shape.hidden
    if config.activation_checkpointing:
        activations = shape.layers * s * c * shape.hidden + s * per_token_layer
    else:
        activations = shape.layers * s * per_token_layer
    whole_grads = shape.block_trainable + shape.root_trainable
    return {
        "parameters": 4 * shape.params // n,
        "gathered": c * (2 * shape.block_params + shape.root_params) if sharded else 0,
        "gradients": 4 * shape.trainable // n,
        "whole_gradients": (c + 4) * whole_grads if sharded else 0,
        "optimizer": 8 * shape.trainable // n,
        "adapters": 4 * shape.adapter_buffers,
        "activations": activations,
        "lm_head": s * shape.vocab * (c + 8 + (4 if c < 4 else 0)),
    }


OFFLOADED = ("parameters", "gradients", "optimizer")  # with --cpu-offload these shards live in host memory


def on_gpu(parts: dict[str, int], config) -> int:
    return sum(v for k, v in parts.items() if not (config.cpu_offload and k in OFFLOADED))


def smallest_fit(shape: Shape, config, compute_bytes: int, gpu_bytes: int, most: int = 1024) -> int | None:
    """The fewest GPUs whose share fits in HEADROOM of `gpu_bytes`; None if even `most` do not."""
    for n in range(1, most + 1):
        if on_gpu(per_gpu(shape, n, config, compute_bytes), config) <= HEADROOM * gpu_bytes:
            return n
    return None


def report(shape: Shape, processes: int, config, compute_bytes: int, gpu_bytes: int) -> dict:
    parts = per_gpu(shape, processes, config, compute_bytes)
    total = on_gpu(parts, config)
    return {
        "model": shape.name, "method": config.method, "params": shape.params, "trainable": shape.trainable,
        "processes": processes, "compute_dtype": "bf16" if compute_bytes == 2 else "fp32",
        "tokens_per_row": config.max_tokens, "activation_checkpointing": config.activation_checkpointing,
        "cpu_offload": config.cpu_offload, "per_gpu_bytes": parts, "gpu_total_bytes": total,
        "host_bytes": sum(parts[k] for k in OFFLOADED) if config.cpu_offload else 0,
        "gpu_bytes": gpu_bytes, "fits": total <= HEADROOM * gpu_bytes,
        "smallest_gpu_count": smallest_fit(shape, config, compute_bytes, gpu_bytes),
    }


LABELS = {
    "parameters": "parameters (fp32 shards)",
    "gathered": "gathered blocks + root",
    "gradients": "gradients (fp32 shards)",
    "whole_gradients": "whole gradients (block+root)",
    "optimizer": "optimizer (AdamW moments)",
    "adapters": "adapter tensors (whole)",
    "activations": "activations (one row)",
    "lm_head": "LM head logits + softmax",
}


def render(plan: dict) -> str:
    gib = lambda b: f"{b / GIB:8.2f} GiB"  # noqa: E731
    lines = [
        f"memory plan: {plan['model']}: {plan['params'] / 1e9:.2f} B parameters, {plan['trainable'] / 1e9:.3f} B "
        f"trained ({plan['method']}); FSDP2 over {plan['processes']} GPU(s), {plan['compute_dtype']} compute, rows of "
        f"{plan['tokens_per_row']} tokens" + (", activation checkpointing" if plan["activation_checkpointing"] else "")
        + (", CPU offload" if plan["cpu_offload"] else ""),
    ]
    for key, value in plan["per_gpu_bytes"].items():
        where = "  (host)" if plan["cpu_offload"] and key in OFFLOADED else ""
        lines.append(f"  {LABELS[key]:28s}{gib(value)}{where}")
    verdict = "fits" if plan["fits"] else "does not fit"
    lines.append(f"  {'per GPU':28s}{gib(plan['gpu_total_bytes'])}  of {plan['gpu_bytes'] / GIB:.0f} GiB: {verdict} "
                 f"(at most {HEADROOM:.0%})")
    fewest = plan["smallest_gpu_count"]
    lines.append(f"smallest GPU count that fits: {fewest}" if fewest else
                 "no GPU count fits: try --method lora, --activation-checkpointing or --cpu-offload")
    return "\n".join(lines)


def main(source: Path, config, processes: int, gpu_gib: float | None, as_json: bool) -> str:
    """The `lab-hooks train --plan` output for the model at `source`."""
    import torch

    gpu_bytes = int(gpu_gib * GIB) if gpu_gib else (
        torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 80 * GIB)
    compute_bytes = 4 if config.dtype == "fp32" else 2  # a GPU run computes in bf16 unless told fp32
    plan = report(model_shape(read_config(source), config, str(source)), processes, config, compute_bytes, gpu_bytes)
    return json.dumps(plan, indent=2) if as_json else render(plan)
