"""The student as the trainer sees it: loaded with its training method, exported as an HF dir.

Methods: "full" trains every weight; "lora" trains low-rank adapters (peft) and "osf"
trains each weight's low singular directions while its top ones stay frozen (PEFT's
orthogonal subspace fine-tuning, OSF: fine-tuning inside the subspace the model uses
least, so what it already knows is kept). Adapters are merged into the exported model,
so every method serves as a plain HF checkpoint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from lab_hooks.errors import LabHooksError
from lab_hooks.train.fsdp import whole


class TrainError(LabHooksError, RuntimeError):
    """A run that cannot start or go on; the message is one line for the user."""


METHODS = ("full", "lora", "osf")


def load_model(init_checkpoint: Path, config, device: torch.device):
    """(tokenizer, model on `device`, fp32) with `config.method`'s trainable parameters."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (init_checkpoint / "config.json").is_file():
        raise TrainError(f"{init_checkpoint}: not a Hugging Face checkpoint (no config.json)")
    if config.method not in METHODS:
        raise TrainError(f"unknown training method {config.method!r} ({', '.join(METHODS)})")
    if config.method == "osf" and not 0 < config.osf_frozen_fraction < 1:
        raise TrainError(f"--osf-frozen-fraction {config.osf_frozen_fraction}: must be between 0 and 1 (exclusive)")
    tokenizer = AutoTokenizer.from_pretrained(init_checkpoint, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        init_checkpoint, dtype=torch.float32, attn_implementation="sdpa", local_files_only=True
    ).to(device)
    if config.activation_checkpointing:  # per decoder block, recomputed in backward
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.method == "full":
        return tokenizer, model
    from peft import LoraConfig, OSFConfig, get_peft_model

    if config.method == "lora":
        adapter = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                             target_modules=list(config.lora_targets), task_type="CAUSAL_LM")
    else:
        adapter = OSFConfig(effective_rank=config.osf_frozen_fraction, target_modules=list(config.lora_targets),
                            task_type="CAUSAL_LM")
    model = get_peft_model(model, adapter)
    for layer in osf_layers(model):
        layer._detach_hooks()  # projected once per step instead: see project_osf_gradients
    return tokenizer, model


def osf_layers(model):
    from peft.tuners.osf.layer import OSFLayer

    return [m for m in model.modules() if isinstance(m, OSFLayer)]


def project_osf_gradients(model) -> None:
    """OSF's gradient projection, applied to the step's accumulated gradients.

    PEFT projects each backward's gradient in a hook on the parameter; under FSDP2 the
    parameters that backward sees are not those objects, so the hook would never run.
    The projection is linear, so projecting the sum once equals projecting each part.
    Math as in peft.tuners.osf.layer.OSFLayer._attach_hooks: U_low's and V_low's
    gradients are kept orthogonal to the frozen top singular directions.
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    for layer in osf_layers(model):
        for adapter, params in layer.osf_svd_params.items():
            for name in ("U_low", "V_low"):
                grad = params[name].grad
                if grad is None:
                    continue
                full = whole(grad) if isinstance(grad, DTensor) else grad
                if name == "U_low" and adapter in layer._osf_U_high:
                    high = layer._osf_U_high[adapter]
                    projected = full - high @ (high.T @ full)
                elif name == "U_low":
                    low = layer._osf_U_low_init[adapter]
                    projected = low @ (low.T @ full)
                elif adapter in layer._osf_V_high:
                    high = layer._osf_V_high[adapter]
                    projected = full - (full @ high.T) @ high
                else:
                    low = layer._osf_V_low_init[adapter]
                    projected = (full @ low.T) @ low
                if isinstance(grad, DTensor):  # every rank holds the projection: keep its own shard
                    projected = distribute_tensor(projected, grad.device_mesh, grad.placements, src_data_rank=None)
                    grad.to_local().copy_(projected.to_local())  # copy_ moves it back to offloaded shards
                else:
                    grad.copy_(projected)


def export(model, tokenizer, init_checkpoint: Path, config, final: Path, summary_json: str, rank: int) -> None:
    """Write `final`: safetensors, tokenizer, chat template, adapters merged; call on every rank.

    Sharded (FSDP2): rank 0 loads the student on CPU and every trained tensor is gathered
    into it one at a time, so only rank 0 ever holds a full model, in host memory. The
    adapters' fixed factors (OSF's initial singular vectors) are taken from the trained
    model, not recomputed, so the merge subtracts exactly what training started from.
    """
    from torch.distributed.tensor import DTensor

    sharded = any(isinstance(p, DTensor) for p in model.parameters())
    served = model
    if sharded:
        served = load_model(init_checkpoint, config, torch.device("cpu"))[1] if rank == 0 else None
        for name, param in model.named_parameters():
            if param.requires_grad:
                full = whole(param)  # a collective: every rank, same order
                if served is not None:
                    served.get_parameter(name).data.copy_(full)
        if served is not None:
            for name, buffer in model.named_buffers():
                served.get_buffer(name).copy_(buffer)
    if rank != 0:
        return
    if config.method != "full":
        served = served.merge_and_unload()
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    served.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "summary.json").write_text(summary_json)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
