"""Session-wide fixtures: each model is loaded once per test session (CI has 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint (converted once per LAB_HOME)."""
    pytest.importorskip("transformers")
    from lab_hooks.models.embedded import embedded_checkpoint

    return embedded_checkpoint()


@pytest.fixture(scope="session")
def hf_backend(embedded_model_dir):
    """The embedded model on the transformers backend, loaded once."""
    from lab_hooks.models import load_backend

    return load_backend("embedded:smollm2-135m-instruct")
