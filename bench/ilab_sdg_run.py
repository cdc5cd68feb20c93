"""Runs instructlab-sdg's `generate_data` (its full pipeline); executed by bench/sdg.py
with the interpreter of the instructlab-sdg venv, never imported by lab-hooks.

Prints one JSON line: {"seconds", "accepted", "error", "blocks"}; "blocks" holds the rows
into and out of each of its pipeline blocks (summed over leaves and batches), so a run that
accepts nothing shows which block dropped the samples.
"""

import argparse
import json
import sys
import time
import traceback
from pathlib import Path


def count_generated(out: Path) -> int:
    """Samples the pipelines kept, before mixing: rows of generated_*/*.jsonl."""
    return sum(len(p.read_text(encoding="utf-8").splitlines()) for p in out.glob("generated_*/*.jsonl"))


def count_block_rows(blocks: dict) -> None:
    """Wrap every instructlab-sdg block's `generate` to add its rows in and out to `blocks`."""
    import importlib
    import pkgutil

    import instructlab.sdg.blocks as package
    from instructlab.sdg.blocks.block import Block

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    pending = list(Block.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "generate" not in cls.__dict__:
            continue

        def counted(self, samples, *args, _generate=cls.__dict__["generate"], **kwargs):
            out = _generate(self, samples, *args, **kwargs)
            rows = blocks.setdefault(self.block_name, [0, 0])
            rows[0] += len(samples)
            rows[1] += len(out)
            return out

        cls.generate = counted


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--model", required=True, help="served model name = the checkpoint path (its tokenizer chunks)")
    p.add_argument("--taxonomy", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--num", type=int, required=True)
    args = p.parse_args()

    import openai
    from instructlab.sdg.generate_data import generate_data

    blocks: dict[str, list[int]] = {}
    count_block_rows(blocks)
    client = openai.OpenAI(base_url=args.endpoint, api_key="none")
    start = time.perf_counter()
    error = None
    try:
        generate_data(
            client=client, model_family="mixtral", model_name=args.model, taxonomy=args.taxonomy,
            taxonomy_base="empty", output_dir=args.out, pipeline="full",
            num_instructions_to_generate=args.num, batch_size=8, num_cpus=2, console_output=False,
            server_ctx_size=8192,
        )
    except BaseException as exc:  # report whatever stops it, with its last frame
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} " \
                f"(at {Path(tb.filename).name}:{tb.lineno})"
    print(json.dumps({"seconds": time.perf_counter() - start, "accepted": count_generated(Path(args.out)),
                      "error": error, "blocks": blocks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
