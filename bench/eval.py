"""Wall time of a base + candidate evaluation with an empty cache vs with the base cached.

Two "PRs" against the same base in one run, on one fresh store:
  1. empty cache: base and candidate 1 are both answered and judged (the anchor);
  2. base cached: a new candidate 2; only it is answered and judged.
Candidates are the embedded model with seeded noise added to its weights (real,
different checkpoints). Also prints tokens/s of answer generation.

    flock /work/wt/bench.lock .venv/bin/python bench/eval.py --quick 1 --max-tokens 32 --judge-max-tokens 16
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def perturbed_checkpoint(source: Path, dest: Path, seed: int, scale: float = 0.02) -> Path:
    """A copy of `source` with N(0, scale * std) noise on every weight matrix."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, dest)
    generator = torch.Generator().manual_seed(seed)
    for file in dest.glob("*.safetensors"):
        tensors = load_file(file)
        for name, tensor in tensors.items():
            if tensor.dim() == 2 and tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
                tensors[name] = (tensor.float() + noise * scale * tensor.float().std()).to(tensor.dtype)
        save_file(tensors, file, metadata={"format": "pt"})
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", type=int, default=1, help="MT-Bench questions per category (default 1)")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--judge-max-tokens", type=int, default=16, help="the embedded judge is prefilled: a few suffice")
    p.add_argument("--judge", default="embedded:smollm2-135m-instruct")
    args = p.parse_args()

    from lab_hooks.eval import Settings, evaluate
    from lab_hooks.models.embedded import embedded_checkpoint
    from lab_hooks.store import Store

    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    settings = Settings(quick=args.quick, max_tokens=args.max_tokens, judge_max_tokens=args.judge_max_tokens)
    base = embedded_checkpoint()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        tmp = Path(tmp)
        candidates = [perturbed_checkpoint(base, tmp / f"candidate{i}", seed=i) for i in (1, 2)]
        store = Store(tmp / "store")
        runs = []
        for label, candidate in (("empty cache", candidates[0]), ("base cached", candidates[1])):
            start = time.perf_counter()
            results = evaluate(f"hf:{base}", f"hf:{candidate}", args.judge, [], store, settings=settings)
            runs.append((label, time.perf_counter() - start, results))

    n = len(runs[0][2]["mtbench"]["subset"]["question_ids"])
    print(f"MT-Bench quick {args.quick} ({n} questions x 2 turns), answers <= {args.max_tokens} tokens, "
          f"judgments <= {args.judge_max_tokens} tokens, judge {args.judge}")
    for label, seconds, results in runs:
        print(f"\n{label}: {seconds:.1f} s wall")
        for row in results["timings"]["steps"]:
            extra = f"  {row['tokens']} tokens, {row['tokens_per_s']} tok/s" if row.get("tokens") else ""
            cached = " (cached)" if row.get("cached") else ""
            print(f"  {row['step']:<28} {row['seconds']:8.1f} s{cached}{extra}")
        mt = results["mtbench"]["overall"]
        print(f"  overall base {mt['base']} candidate {mt['candidate']} delta {mt['delta']} ci {mt['ci']}")
        errors = results["mtbench"]["errors"]
        print(f"  judge errors (prefill {results['judge']['prefill']!r}): "
              + ", ".join(f"{role} {e['errors']}/{e['judgments']}" for role, e in errors.items()))
    (_, cold, _), (_, warm, _) = runs
    rates = [row["tokens_per_s"] for _, _, r in runs for row in r["timings"]["steps"] if row.get("tokens_per_s")
             and row["step"].endswith("answers")]
    print(f"\nanchor (empty cache): {cold:.1f} s; base cached: {warm:.1f} s ({cold / warm:.2f}x faster)")
    print(f"answer generation: {min(rates):.1f}-{max(rates):.1f} tokens/s")
    print("load average at the end " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
