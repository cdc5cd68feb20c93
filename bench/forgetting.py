"""Does replay, OSF or both prevent forgetting? `python bench/forgetting.py [--seeds 0 1 2]`

The embedded student learns leaf A (full fine-tuning), then leaf B four ways, all from
the same checkpoint in the same run: full fine-tuning on B alone (no replay); on the
replay mix a PR gets (`plan_pr`: B's samples + ratio 1.0 replay drawn from main's buffer,
which holds A); OSF on B alone (`--method osf`: PEFT's orthogonal subspace fine-tuning,
the top half of each weight's singular directions frozen); OSF on the replay mix.
Measured per arm: A's held-out loss rise since "after A" (forgetting; lower is better)
and B's held-out loss drop since "after A" (what the PR was for; higher is better),
loss over the assistant tokens of samples no run trained on. Each seed redraws the
held-out split and the data order; the mean and the spread (min..max) over seeds are
printed. `--results FILE` keeps each seed's figures, so seeds run in several shorter
runs still add up to one summary.

Data: real contributors' seed examples of two leaves from the shared corpus
(bench/corpus_samples.py), every distinct Q/A the leaf ever held; SDG output of those
leaves can be given instead with --data FILE.json ({leaf: [samples]}).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lab_hooks.train.data import first_fit_decreasing, packed_row, prepare  # noqa: E402
from lab_hooks.train.loop import TrainConfig, row_loss, train  # noqa: E402
from lab_hooks.train.mix import plan_pr  # noqa: E402

LEAF_A = "compositional_skills/extraction/information/phonetic/alphabet/nato"
LEAF_B = "compositional_skills/writing/freeform/games"
ARMS = (("no replay", "full", False), ("replay", "full", True), ("OSF", "osf", False), ("OSF + replay", "osf", True))


def heldout_loss(checkpoint: Path, samples: list[dict]) -> float:
    """Mean loss per trained (assistant) token, packed like training, no gradient."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="sdpa",
                                                 local_files_only=True).eval()
    data = prepare(samples, tokenizer, 4096, 1).samples
    total, count = 0.0, 0
    for bin_ in first_fit_decreasing([len(s.input_ids) for s in data], 2048):
        with torch.no_grad():
            loss, n = row_loss(model, packed_row([data[i] for i in bin_]), torch.device("cpu"))
        total, count = total + loss.item(), count + n
    return total / count


def split(samples: list[dict], heldout: int, train: int, seed: int) -> tuple[list[dict], list[dict]]:
    shuffled = random.Random(seed).sample(samples, len(samples))
    return shuffled[heldout : heldout + train], shuffled[:heldout]


def one_seed(seed: int, datasets: dict, model: Path, args, work: Path) -> dict:
    """A, then B four ways; {arm: {"A": rise of A's loss, "B": drop of B's loss}} as fractions."""
    a_train, a_test = split(datasets[args.a], args.heldout, args.train, seed)
    b_train, b_test = split(datasets[args.b], args.heldout, args.train, seed)
    config = TrainConfig(batch_size=16, max_tokens=2048, learning_rate=args.lr, warmup_steps=2, epochs=args.epochs,
                         save_every=10**9, seed=seed, progress=False)

    def losses(checkpoint: Path) -> dict:
        return {"A": heldout_loss(checkpoint, a_test), "B": heldout_loss(checkpoint, b_test)}

    after_a, _ = train(a_train, model, work / f"{seed}-a", config)
    before = losses(after_a)
    (mix,) = plan_pr({args.a: a_train}, {args.b: b_train}, ratio=1.0, seed=seed)
    result = {"seed": seed, "after A": before, "arms": {}}
    for name, method, replayed in ARMS:
        samples = mix.samples if replayed else b_train
        checkpoint, summary = train(samples, after_a, work / f"{seed}-{method}-{replayed}", replace(config, method=method))
        after = losses(checkpoint)
        result["arms"][name] = {"A": after["A"] / before["A"] - 1, "B": 1 - after["B"] / before["B"],
                                "losses": after, "steps": summary["steps"], "wall_s": summary["wall_s"]}
        print(f"  seed {seed} {name:13s} A held-out {after['A']:.4f} ({result['arms'][name]['A']:+.1%})  "
              f"B held-out {after['B']:.4f} (gain {result['arms'][name]['B']:+.1%})  "
              f"{summary['steps']} steps {summary['wall_s']:.0f} s", flush=True)
    return result


def summarize(results: list[dict]) -> None:
    print(f"\nover {len(results)} seed(s) {sorted(r['seed'] for r in results)}: mean (min..max)")
    print(f"{'arm':14s} {'A forgotten (loss rise)':>28s} {'B learned (loss drop)':>28s}")
    for name, _, _ in ARMS:
        cells = []
        for leaf in ("A", "B"):
            values = [r["arms"][name][leaf] for r in results]
            cells.append(f"{statistics.mean(values):+.1%} ({min(values):+.1%}..{max(values):+.1%})")
        print(f"{name:14s} {cells[0]:>28s} {cells[1]:>28s}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="HF dir (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--data", type=Path, help="{leaf: [samples]} JSON (default: the shared corpus's seeds)")
    p.add_argument("--a", default=LEAF_A)
    p.add_argument("--b", default=LEAF_B)
    p.add_argument("--heldout", type=int, default=20, help="samples of each leaf held out")
    p.add_argument("--train", type=int, default=64, help="training samples of each leaf (at most)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4, help="every arm's learning rate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--results", type=Path, help="JSON file: each seed's figures are added; the summary covers all")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus_samples import bench_inputs

    model, datasets = bench_inputs(args.model, args.data)
    print(f"A = {args.a}, B = {args.b}: {args.train} train / {args.heldout} held out each; "
          f"{args.epochs} epochs, lr {args.lr}, 16 samples per step; model {model}", flush=True)
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("seeds", "results")}
    saved = json.loads(args.results.read_text()) if args.results and args.results.is_file() else None
    if saved and saved["settings"] != settings:
        p.error(f"{args.results} holds seeds run with other settings: {saved['settings']}")
    results = saved["results"] if saved else []
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-forgetting-") as work:
        for seed in args.seeds:
            results = [r for r in results if r["seed"] != seed] + [one_seed(seed, datasets, model, args, Path(work))]
            if args.results:
                args.results.write_text(json.dumps({"settings": settings, "results": results}, indent=1))
    summarize(results)
    print(f"\n{time.time() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
