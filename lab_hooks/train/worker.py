"""One torchrun worker of a launched phase (lab_hooks.train.launch): trains what `launch` wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lab_hooks.train import fsdp
from lab_hooks.train.launch import INPUTS
from lab_hooks.train.loop import TrainConfig, train
from lab_hooks.train.model import TrainError
from lab_hooks.train.replay import read_jsonl


def main(argv: list[str]) -> int:
    """Train the phase in OUT_DIR/launch from INIT as this rank; a TrainError goes to error.txt."""
    init_checkpoint, out_dir = Path(argv[0]), Path(argv[1])
    inputs = out_dir / INPUTS
    fields = json.loads((inputs / "config.json").read_text())
    config = TrainConfig(**{**fields, "lora_targets": tuple(fields["lora_targets"])})
    try:
        train(read_jsonl(inputs / "samples.jsonl"), init_checkpoint, out_dir, config)
    except TrainError as exc:
        if fsdp.join()[0] == 0:
            (inputs / "error.txt").write_text(str(exc))
        print(f"lab-hooks train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
