"""The one interface every model backend implements (see lab_hooks.models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lab_hooks.errors import InputError, LabHooksError

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
    logprobs: int = 0  # > 0: each generated token's log-probability and its `logprobs` likeliest alternatives


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its log-probability under the model (before temperature),
    and the `top` likeliest tokens at that position as (text, log-probability), likeliest first."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    logprobs: tuple[TokenLogprob, ...] | None = None  # when asked for (params.logprobs) and the backend has them


class Backend(Protocol):
    spec: str

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        """One list of `params.n` completions per conversation, in order.

        A conversation that ends in an assistant message is a prefill: the model goes on
        writing that message (no new turn starts) and each completion is the continuation only.
        """
        ...


class Scorer(Protocol):
    """A backend that can also score given text (transformers, vLLM): teacher forcing, no sampling."""

    def answer_logprobs(self, conversations: list[Conversation]) -> list[list[float]]:
        """Per conversation, the log-probability of each token of its final (assistant) message,
        end-of-turn token included, given everything before it in the model's chat template:
        the tokens a training sample's loss is taken on."""
        ...


def is_prefill(conversation: Conversation) -> bool:
    """Whether a conversation asks the model to continue its final (assistant) message."""
    return bool(conversation) and conversation[-1].get("role") == "assistant"


def template_options(conversation: Conversation) -> dict[str, bool]:
    """The chat-template flags (transformers, vLLM, vLLM's server) that start a new assistant
    turn, or that continue the final message of a prefill."""
    prefill = is_prefill(conversation)
    return {"add_generation_prompt": not prefill, "continue_final_message": prefill}


class BackendError(LabHooksError):
    """A generation that cannot be done; the message is one line a user can act on."""


class SpecError(BackendError, InputError):
    """A model spec string that does not parse or names something that is not there."""


class ContextLengthError(BackendError):
    """One input cannot fit the model's context together with its max_tokens."""

    def __init__(self, index: int, conversation: Conversation, detail: str):
        self.index = index
        super().__init__(f"conversation {index} ({snippet(conversation)}): {detail}")


def snippet(conversation: Conversation, width: int = 60) -> str:
    """The start of a conversation's last user turn, on one line, to say which input it was."""
    turns = [m.get("content", "") for m in conversation if m.get("role") == "user"] or [""]
    text = " ".join(str(turns[-1]).split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def check_fits(conversations: list[Conversation], prompt_tokens: list[int], max_tokens: int,
               context_length: int) -> None:
    """Refuse the batch up front, naming the first input whose prompt + max_tokens overflow."""
    for index, (conversation, length) in enumerate(zip(conversations, prompt_tokens)):
        if length + max_tokens > context_length:
            raise ContextLengthError(
                index, conversation,
                f"prompt of {length} tokens + max_tokens {max_tokens} exceeds the model's context "
                f"of {context_length} tokens; shorten the input or lower max_tokens")
