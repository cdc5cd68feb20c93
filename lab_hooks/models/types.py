"""The one interface every model backend implements (see lab_hooks.models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}
Conversation = list  # list[Message]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


class Backend(Protocol):
    spec: str

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        """One list of `params.n` completions per conversation, in order."""
        ...
