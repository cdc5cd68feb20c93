"""Resume points: model and optimizer shards with torch.distributed.checkpoint (DCP), the rest as JSON.

A resume point is a folder `resume-<step>/`: each rank writes its own shards of the
trainable weights and of AdamW's state (DCP; a later run may reshard them) and its RNG
state (`rng-<rank>.json`). Only when every rank has finished does rank 0 point
`resume.json` (run id, step, world size, loss curve) at it, written to a temporary name,
fsynced and renamed; older folders go after. A run killed at any point (kill -9 of any
rank included) finds either the new point or the previous one, never half of one.

Nothing is unpickled but DCP's own `.metadata`: tensors load with `weights_only=True`
and the state dicts saved hold tensors only (the learning rate is a function of the
step, the data order of the seed and the step). A resume folder is this trainer's own
output in the store's work area; it never comes from a PR.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from lab_hooks.train.model import TrainError

POINTER = "resume.json"


def _state(model, optimizer) -> tuple[dict, dict]:
    """(trainable weights, optimizer state dict) keyed by parameter name; DTensor shards under FSDP2."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    frozen_out = StateDictOptions(ignore_frozen_params=True)
    return get_model_state_dict(model, options=frozen_out), get_optimizer_state_dict(model, optimizer, options=frozen_out)


def _rng_state() -> dict:
    version, words, gauss = random.getstate()
    state = {"python": [version, list(words), gauss], "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state:
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def _quiet():
    """DCP warns on every call that one process without a process group is one process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def save(out_dir: Path, run_id: str, step: int, losses: list, model, optimizer) -> None:
    """Write the resume point of `step`; every rank calls it."""
    import torch.distributed.checkpoint as dcp

    rank = dist.get_rank() if dist.is_initialized() else 0
    folder = out_dir / f"resume-{step:07d}"
    weights, optim = _state(model, optimizer)
    with _quiet():
        dcp.save({"model": weights, "optimizer": optim["state"]}, checkpoint_id=folder, no_dist=not dist.is_initialized())
    _write(folder / f"rng-{rank}.json", json.dumps(_rng_state()))
    _barrier()
    if rank == 0:
        world = dist.get_world_size() if dist.is_initialized() else 1
        pointer = {"run": run_id, "step": step, "world_size": world, "folder": folder.name, "losses": losses}
        _write(out_dir / POINTER, json.dumps(pointer))
        remove(out_dir, keep=folder.name)
    _barrier()


def load(out_dir: Path, run_id: str, model, optimizer) -> tuple[int, list]:
    """(step, loss curve) of this run's last resume point, its state loaded; (0, []) when none."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    pointer_file = out_dir / POINTER
    if not pointer_file.is_file():
        return 0, []
    pointer = json.loads(pointer_file.read_text())
    if pointer.get("run") != run_id:
        raise TrainError(f"{out_dir} holds a different run (other data, model or config): remove it or pick another")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if pointer["world_size"] != world:
        raise TrainError(f"{out_dir}: its resume point was written by {pointer['world_size']} processes, this run has "
                         f"{world}: resume with --nproc_per_node {pointer['world_size']}, or remove it to start over")
    folder = out_dir / pointer["folder"]
    weights, optim = _state(model, optimizer)  # filled in place by DCP
    with _quiet():
        dcp.load({"model": weights, "optimizer": optim["state"]}, checkpoint_id=folder, no_dist=not dist.is_initialized())
    set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=optim)
    _set_rng_state(json.loads((folder / f"rng-{rank}.json").read_text()))
    return pointer["step"], pointer["losses"]


def remove(out_dir: Path, keep: str | None = None) -> None:
    """Delete resume points (all but `keep`); rank 0 only."""
    for folder in out_dir.glob("resume-*"):
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)
    if keep is None:
        (out_dir / POINTER).unlink(missing_ok=True)
