"""Training settings, the one owner of every training default (no torch here).

`lab-hooks train`, `pr` and `promote` generate their training flags from these
fields (lab_hooks.flags.add_train_flags), so a field added here is a flag of all
three, and equal flags build equal configs in each. `metadata`: `help` for the
flag, `choices`, `min` (the least value a number may take), `flag=False` for a
setting that is not a training choice (progress bars).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The peak learning rate of each method when none is given: LoRA's adapters start at zero
# and need a larger step than full fine-tuning.
LEARNING_RATES = {"full": 2e-5, "lora": 2e-4, "osf": 2e-5}


def setting(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class TrainConfig:
    method: str = setting("full", "full fine-tuning; LoRA adapters, or OSF (orthogonal subspace fine-tuning: each "
                          "weight's top singular directions frozen), merged into the candidate",
                          choices=tuple(LEARNING_RATES))
    learning_rate: float | None = setting(None, "peak learning rate (default: 2e-5 full and osf, 2e-4 lora)")
    warmup_steps: int = setting(10, "steps of linear warm-up, then constant", min=0)
    epochs: int = setting(1, "passes over the phase's samples", min=1)
    max_steps: int | None = setting(None, "cap the optimizer steps per phase (overrides epochs)", min=1)
    batch_size: int = setting(32, "samples per optimizer step, all processes together", min=1)
    max_tokens: int = setting(4096, "tokens per packed training row", min=1)
    max_seq_len: int = setting(2048, "longer samples are dropped", min=1)
    min_trained_tokens: int = setting(2, "samples with fewer trained tokens are dropped", min=0)
    weight_decay: float = setting(0.0, "AdamW weight decay")
    grad_clip: float = setting(1.0, "gradient norm clip")
    seed: int = setting(0, "data order and initialisation seed (the PR loop's SDG and eval seed too)")
    save_every: int = setting(25, "steps between resume points", min=1)
    dtype: str = setting("auto", "bf16 on a GPU that has it (auto), or bf16 / fp32",
                         choices=("auto", "bf16", "fp32"))
    lora_r: int = setting(16, "LoRA rank", min=1)
    lora_alpha: int = setting(32, "LoRA scale numerator", min=1)
    lora_dropout: float = setting(0.05, "LoRA dropout")
    lora_targets: tuple[str, ...] = setting(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"), "module names LoRA and OSF adapt")
    osf_frozen_fraction: float = setting(0.5, "OSF: share of each adapted weight's singular directions kept frozen")
    nproc: int = setting(0, "processes (one per GPU) training under torchrun with FSDP2; 0: every visible GPU, "
                            "one in-process run without a GPU", min=0)
    cpu_offload: bool = setting(False, "FSDP2 keeps parameter shards, gradients and optimizer state in host memory "
                                       "(GPU only)")
    activation_checkpointing: bool = setting(False, "recompute each decoder block's activations in backward")
    progress: bool = field(default=True, metadata={"flag": False})

    def __post_init__(self):
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", LEARNING_RATES.get(self.method, LEARNING_RATES["full"]))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))

    def identity(self) -> dict:
        """The fields that decide the result (a resumed run must match them)."""
        how = ("save_every", "progress", "nproc", "cpu_offload", "activation_checkpointing")  # same result either way
        return {k: v for k, v in asdict(self).items() if k not in how}
