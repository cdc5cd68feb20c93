"""Pipelines as data: the YAML files under `lab_hooks/sdg/pipelines/`, loaded and checked.

A pipeline is a list of steps over samples (dicts of text fields):
- `generate`: render a prompt per sample, ask the teacher, parse each completion
  into new fields; with `n` each input yields up to n children.
- `judge`: the teacher scores each sample; a parser reads the score; `keep` says
  which scores survive. The raw text and the score stay in the sample's trace.
- `dedup`: drop samples whose `field` equals (normalized) or is ROUGE-L-close to
  one of the leaf's seed questions or an already kept sample's.
`output` says how a surviving sample becomes a user/assistant exchange.
A prompt is a system message, optional demonstration turns (`examples`: a
user/assistant pair each, e.g. the seed and its answer: small teachers copy a
demonstrated format far better than a described one) and the final user turn.
Prompts are `string.Template`s (`${field}`), so leaf text is never interpreted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any, Callable

import yaml

from lab_hooks.errors import InputError
from lab_hooks.sdg.parsers import get_parser

PIPELINES = ("freeform_skills", "grounded_skills", "knowledge")
STEP_TYPES = ("generate", "judge", "dedup")


class PipelineError(InputError):
    """A pipeline file that does not say what the engine needs."""


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    system: Template | None = None
    examples: tuple[tuple[Template, Template], ...] = ()  # demonstration turns (user, assistant)
    user: Template | None = None
    parser: Callable[[str], dict | None] | None = None
    n: int | str = 1  # an int, or "samples_per_seed"
    temperature: float = 0.0
    max_tokens: int = 256
    keep: dict = field(default_factory=dict)  # judge: {min: 2} / {equals: 1}
    field: str = ""  # dedup: which field
    threshold: float = 0.7

    @property
    def expands(self) -> bool:
        return self.type == "generate" and self.n != 1

    def keeps(self, score: int) -> bool:
        if "equals" in self.keep:
            return score == self.keep["equals"]
        return score >= self.keep.get("min", 1)

    def render(self, fields: dict[str, str]) -> list[dict]:
        """The conversation for one sample; a missing field is a pipeline bug, so it raises."""
        messages = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system.substitute(fields)})
        for user, assistant in self.examples:
            messages.append({"role": "user", "content": user.substitute(fields)})
            messages.append({"role": "assistant", "content": assistant.substitute(fields)})
        messages.append({"role": "user", "content": self.user.substitute(fields)})
        return messages


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]
    user: Template  # output: the user turn of an accepted sample
    assistant: Template
    sha: str  # of the file's bytes: part of every cache key
    batch_size: int = 16


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict) or raw.get("type") not in STEP_TYPES or not raw.get("name"):
        raise PipelineError(f"{where}: a step needs a name and a type in {STEP_TYPES}")
    kw: dict[str, Any] = {"name": str(raw["name"]), "type": raw["type"]}
    if raw["type"] == "dedup":
        kw.update(field=raw["field"], threshold=float(raw.get("threshold", 0.7)))
        return Step(**kw)
    prompt = raw.get("prompt") or {}
    if "user" not in prompt or "parser" not in raw:
        raise PipelineError(f"{where} ({raw['name']}): an LLM step needs prompt.user and a parser")
    try:
        parser = get_parser(raw["parser"])
    except ValueError as exc:
        raise PipelineError(f"{where} ({raw['name']}): {exc}") from None
    n = raw.get("n", 1)
    if not (n == "samples_per_seed" or (isinstance(n, int) and n >= 1)):
        raise PipelineError(f"{where} ({raw['name']}): n must be a positive int or samples_per_seed")
    examples = prompt.get("examples") or []
    if not all(isinstance(e, dict) and {"user", "assistant"} <= set(e) for e in examples):
        raise PipelineError(f"{where} ({raw['name']}): each prompt example needs user and assistant")
    kw.update(
        system=Template(prompt["system"]) if prompt.get("system") else None,
        examples=tuple((Template(e["user"]), Template(e["assistant"])) for e in examples),
        user=Template(prompt["user"]),
        parser=parser,
        n=n,
        temperature=float(raw.get("temperature", 0.0)),
        max_tokens=int(raw.get("max_tokens", 256)),
        keep=dict(raw.get("keep") or {}),
    )
    if raw["type"] == "judge" and not kw["keep"]:
        raise PipelineError(f"{where} ({raw['name']}): a judge needs keep: {{min: N}} or {{equals: N}}")
    return Step(**kw)


def parse_pipeline(text: bytes, name: str) -> Pipeline:
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not isinstance(data.get("output"), dict):
        raise PipelineError(f"{name}: a pipeline is a mapping with steps (a list) and output")
    steps = tuple(_step(s, f"{name} step {i + 1}") for i, s in enumerate(data["steps"]))
    if len({s.name for s in steps}) != len(steps):
        raise PipelineError(f"{name}: step names must be unique")
    return Pipeline(
        name=name,
        steps=steps,
        user=Template(data["output"]["user"]),
        assistant=Template(data["output"]["assistant"]),
        sha=hashlib.sha256(text).hexdigest(),
        batch_size=int(data.get("batch_size", 16)),
    )


def load_pipeline(name: str) -> Pipeline:
    """One of `PIPELINES`, from the package's data files."""
    if name not in PIPELINES:
        raise PipelineError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    text = resources.files("lab_hooks.sdg").joinpath("pipelines", f"{name}.yaml").read_bytes()
    return parse_pipeline(text, name)
