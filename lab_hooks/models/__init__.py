"""Models behind one interface: `load_backend(spec).chat(conversations, params)`.

Spec strings (see lab_hooks.models.specs) pick the implementation:
transformers (`embedded:`, `hf:`), the vLLM offline engine (`vllm:`), or any
OpenAI-compatible server (`openai:`). Heavy imports happen inside each backend.
"""

from __future__ import annotations

from pathlib import Path

from lab_hooks.models.specs import ModelSpec, parse_spec, take_options
from lab_hooks.models.types import (
    Backend, BackendError, Completion, ContextLengthError, SamplingParams, SpecError,
)

__all__ = [
    "Backend", "BackendError", "Completion", "ContextLengthError", "SamplingParams", "SpecError",
    "load_backend", "parse_spec",
]


def load_backend(spec: str) -> Backend:
    """The backend a spec string names, loaded and ready to `chat`."""
    parsed = parse_spec(spec)
    if parsed.kind in ("embedded", "hf"):
        from lab_hooks.models.hf import DEFAULTS, TransformersBackend

        return TransformersBackend(spec, checkpoint_path(parsed), **take_options(parsed, DEFAULTS))
    if parsed.kind == "vllm":
        from lab_hooks.models.vllm_engine import VLLMBackend

        return VLLMBackend(spec, checkpoint_path(parsed), **parsed.options)
    from lab_hooks.models.openai_http import DEFAULTS, OpenAIBackend

    return OpenAIBackend(spec, parsed.endpoints, parsed.model, **take_options(parsed, DEFAULTS))


def checkpoint_path(spec: ModelSpec) -> Path:
    """A local checkpoint dir: an embedded model's name (converted on first use) or a path."""
    from lab_hooks.models.embedded import EMBEDDED, embedded_checkpoint

    if spec.kind == "embedded" or spec.target in EMBEDDED:
        if spec.target not in EMBEDDED:
            raise SpecError(f"model spec {spec.text!r}: unknown embedded model {spec.target!r} "
                            f"(known: {', '.join(EMBEDDED)})")
        return embedded_checkpoint(spec.target)
    path = Path(spec.target).expanduser()
    if not (path / "config.json").is_file():
        raise SpecError(f"model spec {spec.text!r}: {path} is not a checkpoint dir (no config.json)")
    return path
