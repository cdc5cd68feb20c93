"""Training speed and the price of a PR. `python bench/train.py [--model DIR] [--data FILE.json]`

1. Our trainer vs Hugging Face `Trainer` with its padding collator (DataCollatorForSeq2Seq:
   `Trainer`'s default DataCollatorWithPadding cannot pad label masks), one run, same
   model, same tokenized samples and masks, same samples per optimizer step, same
   learning rate, one epoch: tokens/s (real tokens per second of training) and the
   real-token fraction (tokens that are not padding / tokens computed).
2. Incremental phase 2 for a PR that modifies 5 % of the leaves (its leaves' data + replay
   of ratio 1.0 from the others) vs full retraining on every leaf, same config: tokens
   processed and wall time. A PR's price depends on which leaves it touches, so `--prs`
   PRs are drawn (seeds 0, 1, ...) and the tokens each would process are counted exactly
   (tokenized, not trained); the spread is printed and the median PR is the one trained
   and timed against the full retrain.

Data: real contributors' seed examples from the shared corpus (bench/corpus_samples.py),
or --data FILE.json ({leaf: [samples]}).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from lab_hooks.train.data import prepare  # noqa: E402
from lab_hooks.train.loop import TrainConfig, train  # noqa: E402
from lab_hooks.train.mix import plan_pr  # noqa: E402


def pick_leaves(datasets: dict, count: int, per_leaf: int, seed: int) -> dict[str, list[dict]]:
    """`count` leaves with at least `per_leaf` samples, `per_leaf` samples each."""
    rng = random.Random(seed)
    names = rng.sample(sorted(n for n, s in datasets.items() if len(s) >= per_leaf), count)
    return {n: rng.sample(datasets[n], per_leaf) for n in sorted(names)}


def hf_trainer(samples: list[dict], model_dir: Path, out: Path, config: TrainConfig) -> dict:
    """The anchor: transformers' Trainer over the same tokenized samples, padded per batch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    data = prepare(samples, tokenizer, config.max_seq_len, config.min_trained_tokens).samples
    rows = [{"input_ids": list(s.input_ids), "labels": list(s.labels)} for s in data]
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    counts = {"real": 0, "computed": 0}

    def collate(batch):
        out = pad(batch)
        counts["real"] += int(out["attention_mask"].sum())
        counts["computed"] += out["input_ids"].numel()
        return out

    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=config.batch_size, num_train_epochs=config.epochs,
        learning_rate=config.learning_rate, warmup_steps=config.warmup_steps,
        lr_scheduler_type="constant_with_warmup", weight_decay=config.weight_decay, max_grad_norm=config.grad_clip,
        bf16=cuda and torch.cuda.is_bf16_supported(), save_strategy="no", report_to=[], logging_steps=10_000,
        seed=config.seed, dataloader_num_workers=0, disable_tqdm=True,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa",
                                                 local_files_only=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    began = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - began
    return {"tokens_per_s": counts["real"] / wall, "real_token_fraction": counts["real"] / counts["computed"], "wall_s": wall}


def timed_train(samples, model_dir, out, config) -> dict:
    began = time.perf_counter()
    _, summary = train(samples, model_dir, out, config)
    return summary | {"end_to_end_s": time.perf_counter() - began,
                      "tokens_processed": summary["tokens_per_epoch"] * config.epochs}


def throughput(subset: list[dict], model: Path, work: Path, config: TrainConfig, args) -> None:
    anchor = hf_trainer(subset, model, work / "hf", config)
    ours = timed_train(subset, model, work / "ours", config)
    print(f"\n1. {len(subset)} samples (longer than {args.max_seq_len} tokens dropped), "
          f"{args.batch_size} per step, one epoch")
    print(f"   HF Trainer + padding: {anchor['tokens_per_s']:9.1f} tokens/s, real tokens {anchor['real_token_fraction']:.1%}")
    print(f"   lab-hooks packed:     {ours['tokens_per_s']:9.1f} tokens/s, real tokens {ours['real_token_fraction']:.1%}")
    print(f"   speed-up: {ours['tokens_per_s'] / anchor['tokens_per_s']:.2f}x")


def incremental_vs_full(leaves: dict[str, list[dict]], model: Path, work: Path, config: TrainConfig, args) -> None:
    pool = [s for rows in leaves.values() for s in rows]
    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    length = {s.sample_id: len(s.input_ids)
              for s in prepare(pool, tokenizer, config.max_seq_len, config.min_trained_tokens).samples}
    full_tokens = sum(length.get(s["id"], 0) for s in pool) * config.epochs
    size = max(1, round(0.05 * len(leaves)))
    prs = []
    for seed in range(args.prs):
        touched = sorted(random.Random(seed).sample(sorted(leaves), size))
        (mix,) = plan_pr(leaves, {n: leaves[n] for n in touched}, removed=touched, ratio=1.0, seed=0)
        prs.append((sum(length.get(s["id"], 0) for s in mix.samples) * config.epochs, seed, touched, mix))
    prs.sort(key=lambda pr: -pr[0])
    ratios = [full_tokens / pr[0] for pr in prs]
    _, seed, touched, mix = prs[len(prs) // 2]
    print(f"\n2. PRs modifying {size} of {len(leaves)} leaves ({size / len(leaves):.0%}), {args.per_leaf} samples each, "
          f"replay ratio 1.0; tokens counted for {len(prs)} random PRs: full / incremental "
          f"min {ratios[0]:.1f}x, median {ratios[len(prs) // 2]:.1f}x, max {ratios[-1]:.1f}x, "
          f"full / mean incremental {full_tokens * len(prs) / sum(pr[0] for pr in prs):.1f}x")
    print(f"   trained: the median PR (seed {seed}): {', '.join(touched)}")
    full = timed_train(pool, model, work / "full", config)
    incremental = timed_train(mix.samples, model, work / "incremental", config)
    for name, timed in (("full retrain", full), ("incremental", incremental)):
        print(f"   {name:13s} {timed['samples']:4d} samples trained {timed['tokens_processed']:8d} tokens "
              f"loop {timed['wall_s']:7.1f} s  end-to-end {timed['end_to_end_s']:7.1f} s")
    print(f"   cheaper by: {full['tokens_processed'] / incremental['tokens_processed']:.1f}x tokens, "
          f"{full['wall_s'] / incremental['wall_s']:.1f}x loop wall, "
          f"{full['end_to_end_s'] / incremental['end_to_end_s']:.1f}x end-to-end wall")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        return run(Path(work))


def run(work: Path) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="HF dir (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--data", type=Path, help="{leaf: [samples]} JSON (default: the shared corpus's seeds)")
    p.add_argument("--leaves", type=int, default=40)
    p.add_argument("--per-leaf", type=int, default=8)
    p.add_argument("--throughput-samples", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8, help="samples per optimizer step (both trainers)")
    p.add_argument("--max-seq-len", type=int, default=512, help="longer samples are dropped (both trainers)")
    p.add_argument("--max-tokens", type=int, default=4096, help="tokens per packed row (ours)")
    p.add_argument("--prs", type=int, default=25, help="random 5%% PRs whose tokens are counted (part 2)")
    p.add_argument("--part", type=int, choices=(1, 2), help="run only this part (default: both)")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus_samples import bench_inputs

    args.model, datasets = bench_inputs(args.model, args.data)
    model = args.model
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}; model: {args.model}")
    config = TrainConfig(batch_size=args.batch_size, max_tokens=args.max_tokens, max_seq_len=args.max_seq_len,
                         learning_rate=2e-5, warmup_steps=2, epochs=1, save_every=10**9, progress=False)

    leaves = pick_leaves(datasets, args.leaves, args.per_leaf, seed=0)
    pool = [s for rows in leaves.values() for s in rows]
    if args.part != 2:
        throughput(random.Random(1).sample(pool, min(args.throughput_samples, len(pool))), model, work, config, args)
    if args.part != 1:
        incremental_vs_full(leaves, model, work, config, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
