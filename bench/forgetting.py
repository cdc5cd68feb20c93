"""Does replay prevent forgetting? `python bench/forgetting.py`

The embedded student learns leaf A, then leaf B: once without replay, once with the
replay mix a PR gets (`plan_pr`: B's samples + ratio 1.0 replay drawn from main's buffer,
which holds A). Printed: A's (and B's) held-out loss at each point, loss over the
assistant tokens of samples no run trained on. Target: with replay, A's held-out loss
stays within 5 % of its value before B; without replay, the rise.

Data: real contributors' seed examples of two leaves from the shared corpus
(bench/corpus_samples.py), every distinct Q/A the leaf ever held; SDG output of those
leaves can be given instead with --data FILE.json ({leaf: [samples]}).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lab_hooks.train.data import first_fit_decreasing, packed_row, prepare  # noqa: E402
from lab_hooks.train.loop import TrainConfig, row_loss, train  # noqa: E402
from lab_hooks.train.mix import plan_pr  # noqa: E402

LEAF_A = "compositional_skills/extraction/information/phonetic/alphabet/nato"
LEAF_B = "compositional_skills/writing/freeform/games"


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


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-forgetting-") as work:
        return run(Path(work))


def run(work: Path) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="HF dir (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--data", type=Path, help="{leaf: [samples]} JSON (default: the shared corpus's seeds)")
    p.add_argument("--a", default=LEAF_A)
    p.add_argument("--b", default=LEAF_B)
    p.add_argument("--heldout", type=int, default=20, help="samples of each leaf held out")
    p.add_argument("--train", type=int, default=64, help="training samples of each leaf (at most)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus_samples import bench_inputs

    args.model, datasets = bench_inputs(args.model, args.data)
    a_train, a_test = split(datasets[args.a], args.heldout, args.train, seed=0)
    b_train, b_test = split(datasets[args.b], args.heldout, args.train, seed=0)
    config = TrainConfig(batch_size=16, max_tokens=2048, learning_rate=args.lr, warmup_steps=2, epochs=args.epochs,
                         save_every=10**9)
    print(f"A = {args.a}: {len(a_train)} train / {len(a_test)} held out")
    print(f"B = {args.b}: {len(b_train)} train / {len(b_test)} held out")
    print(f"full fine-tuning, {args.epochs} epochs, lr {args.lr}, 16 samples per step\n")

    def report(name: str, checkpoint: Path) -> dict:
        losses = {"A": heldout_loss(checkpoint, a_test), "B": heldout_loss(checkpoint, b_test)}
        print(f"{name:32s} held-out loss  A {losses['A']:.4f}   B {losses['B']:.4f}", flush=True)
        return losses

    report("base model", args.model)
    after_a, _ = train(a_train, args.model, work / "a", config)
    before = report("after A", after_a)
    plain, _ = train(b_train, after_a, work / "b-no-replay", config)
    without = report("after B, no replay", plain)
    (mix,) = plan_pr({args.a: a_train}, {args.b: b_train}, ratio=1.0, seed=0)
    replayed, _ = train(mix.samples, after_a, work / "b-replay", config)
    with_ = report(f"after B + replay ({sum(mix.recipe['replay'].values())} of A)", replayed)
    print(f"\nA's held-out loss vs before B: no replay {without['A'] / before['A'] - 1:+.1%}, "
          f"with replay {with_['A'] / before['A'] - 1:+.1%} (target within 5%)")
    print(f"B learned: held-out loss {before['B']:.4f} -> {without['B']:.4f} (no replay), {with_['B']:.4f} (replay)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
