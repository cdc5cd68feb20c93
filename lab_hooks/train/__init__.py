"""Phased training with a replay buffer: a PR retrains only what it must.

For the PR loop:

    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.loop import TrainConfig
    from lab_hooks.train.replay import load_buffer, read_generated

    key, checkpoint, summary = train_candidate(
        store, load_buffer(store),                 # main's buffer: ref "main/replay"
        {leaf: samples, ...},                      # the PR's added/modified leaves' new data
        removed=[leaf, ...],                       # deleted/modified leaves: not replayed
        student=embedded_checkpoint(),             # used when main has no "main/checkpoint"
        config=TrainConfig(method="full"),         # or "lora" (merged into the candidate)
        replay_ratio=1.0, external={"name": samples},
    )
    # checkpoint: HF dir in the store (safetensors, tokenizer, chat template) that
    # transformers and vLLM load; key: its artifact key (None if nothing to train).
    # summary["phases"]: per phase {phase, recipe_hash, new_samples, replay_samples,
    # replay_ratio, samples, dropped, steps, loss_first, loss_last, tokens_per_s, ...}

On merge, advance main: `replay.save_buffer(store, replay.advanced_leaves(
replay.buffer_leaves(store), {leaf: sdg_key}, removed))` and `store.set_refs({
"main/checkpoint": key, "main/replay": buffer_key}, expect=...)`.

The pieces, each usable alone:
- `mix`: the phase plan of a PR and its recipe hash (pure, no torch).
- `data`: chat-template rendering, loss masks, too-long/too-short drops, packing.
- `loop.train(samples, init_checkpoint, out_dir, config)`: one phase, resumable after
  kill -9, data parallel under torchrun.
- `pr.train_pr(...)` / `pr.train_phase(...)`: phases over plain data and dirs, no store.
- `cli`: `lab-hooks train --base REF [--head REF] --student SPEC [--method full|lora]`.
"""
