"""Scale-out on PyTorch's own engine: FSDP2 (`fully_shard`) over a device mesh of the world.

Under torchrun each process holds 1/world of every parameter, gradient and optimizer
state; a decoder block's full parameters exist only while it runs (all-gathered before,
freed after) and its gradients are reduce-scattered back to the shards. Without torchrun
there is no process group and the model stays a plain module.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist


def under_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def processes(config) -> int:
    """How many processes a run uses: `config.nproc`, else one per visible GPU (one on CPU)."""
    return config.nproc or max(torch.cuda.device_count(), 1)


def join() -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins torchrun's process group (NCCL on GPU, gloo on CPU)."""
    if not under_torchrun():
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return dist.get_rank(), dist.get_world_size(), device


def bf16(config, device: torch.device) -> bool:
    """Compute in bf16: asked for, or "auto" on a GPU that has it; else fp32."""
    return config.dtype == "bf16" or (config.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())


def shard(model, config, device: torch.device):
    """`fully_shard` each decoder block, then the root (embeddings, final norm, LM head).

    Master weights stay fp32 and sharded; in bf16 the blocks compute in bf16 and
    gradients are reduced in fp32. Gradients are summed across ranks, not averaged: the
    loss is already divided by the whole step's trained tokens.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    options = {"mesh": mesh}
    if bf16(config, device):
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if config.cpu_offload and device.type == "cuda":
        options["offload_policy"] = CPUOffloadPolicy()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    blocks = set(base._no_split_modules or ())
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, **options)
    fully_shard(model, **options)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # gloo has no pre-multiplied sum
    return model


def whole(tensor):
    """A DTensor's whole value (a collective); shards offloaded to host memory go to the mesh's device first."""
    device = tensor.device_mesh.device_type
    return (tensor if tensor.device.type == device else tensor.to(device)).full_tensor()


def clip_grad_norm(params: list, max_norm: float) -> float:
    """The gradients' global norm (over all shards), clipped to `max_norm` when it is set."""
    from torch.distributed.tensor import DTensor

    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if isinstance(norm, DTensor):
        norm = whole(norm)
    if max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm.item()
