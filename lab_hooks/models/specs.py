"""Model spec strings, as users write them in config and workflow inputs.

    embedded:smollm2-135m-instruct                 the pinned embedded model (transformers)
    hf:/path/to/checkpoint?batch_size=8            transformers on a local HF dir
    vllm:/path?tensor_parallel_size=2              the vLLM offline engine (options passed through)
    openai:http://127.0.0.1:8000/v1#model          an OpenAI-compatible server
    openai:http://a:8000/v1,http://b:8000/v1?concurrency=16#model   replicas, round-robin

`hf:` and `vllm:` also accept an embedded model's name in place of a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from lab_hooks.models.types import SpecError

KINDS = ("embedded", "hf", "vllm", "openai")
DEFAULT_EMBEDDED = "smollm2-135m-instruct"  # the one default model: teacher, student and judge
EMBEDDED_SPEC = f"embedded:{DEFAULT_EMBEDDED}"
Option = str | int | float | bool


@dataclass(frozen=True)
class ModelSpec:
    text: str
    kind: str
    target: str  # embedded name, checkpoint path, or comma-separated endpoint URLs
    options: dict[str, Option] = field(default_factory=dict)
    model: str = ""  # openai: the served model name after '#'

    @property
    def endpoints(self) -> list[str]:
        return [url.rstrip("/") for url in self.target.split(",")]


def parse_spec(text: str) -> ModelSpec:
    kind, colon, rest = text.partition(":")
    if not colon or kind not in KINDS:
        raise SpecError(f"model spec {text!r}: expected one of {', '.join(k + ':' for k in KINDS)}")
    model = ""
    if kind == "openai":
        rest, hash_, model = rest.rpartition("#")
        if not hash_ or not model:
            raise SpecError(f"model spec {text!r}: an openai: spec ends in #MODEL, the served model name")
    target, _, query = rest.partition("?")
    if not target:
        raise SpecError(f"model spec {text!r}: nothing after {kind + ':'!r}")
    spec = ModelSpec(text, kind, target, _parse_options(text, query), model)
    if kind == "openai":
        bad = [url for url in spec.endpoints if not url.startswith(("http://", "https://"))]
        if bad:
            raise SpecError(f"model spec {text!r}: endpoint {bad[0]!r} is not an http(s) URL")
    return spec


def _parse_options(text: str, query: str) -> dict[str, Option]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise SpecError(f"model spec {text!r}: options must look like ?key=value&key=value") from None
    return {key: _coerce(value) for key, value in pairs}


def _coerce(value: str) -> Option:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def take_options(spec: ModelSpec, defaults: dict[str, Option]) -> dict[str, Option]:
    """The spec's options over `defaults`, refusing any option the backend does not know."""
    unknown = sorted(set(spec.options) - set(defaults))
    if unknown:
        raise SpecError(f"model spec {spec.text!r}: unknown option {unknown[0]!r} for {spec.kind}: "
                        f"(known: {', '.join(sorted(defaults))})")
    return {**defaults, **spec.options}
