"""Launch a phase under torchrun from a plain process (the PR loop, `lab-hooks train`).

`launch` writes the phase's samples and config into its work dir and runs
`torchrun --standalone --nproc_per_node N -m lab_hooks.train.worker INIT OUT_DIR`; each
process joins the group and calls `train` on the same inputs, which shards the model
with FSDP2. The checkpoint and summary land where an in-process run puts them, so the
caller cannot tell the difference but for the speed. A killed launch resumes like any
run. Several nodes: start `lab-hooks train` under torchrun on each (docs/training.md).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

from lab_hooks.train import fsdp
from lab_hooks.train.model import TrainError

INPUTS = "launch"  # folder in the phase's work dir: samples.jsonl, config.json, error.txt


def launch(samples: list[dict], init_checkpoint: Path, out_dir: Path, config) -> tuple[Path, dict]:
    """Train one phase in `fsdp.processes(config)` processes; returns what `train` returns."""
    inputs = out_dir / INPUTS
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "samples.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    (inputs / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (inputs / "error.txt").unlink(missing_ok=True)
    nproc = fsdp.processes(config)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "lab_hooks.train.worker", str(init_checkpoint), str(out_dir)]
    code = subprocess.run(command).returncode
    error = inputs / "error.txt"
    if error.is_file():
        raise TrainError(error.read_text().strip())
    final = out_dir / "model"
    if code or not (final / "summary.json").is_file():
        raise TrainError(f"training under torchrun ({nproc} processes) failed with exit code {code}; rerun to resume")
    shutil.rmtree(inputs)
    return final, json.loads((final / "summary.json").read_text())
