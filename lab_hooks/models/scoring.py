"""What the local backends share to score text: the tokens of a conversation's final answer.

The span is found the way the trainer finds the turns it trains on (lab_hooks.train.data):
render the conversation with the model's chat template, render everything before the
answer with the assistant header, and take the tokens whose first character lies after
that prefix. So an answer's score covers exactly the tokens its training loss would.
"""

from __future__ import annotations

from lab_hooks.models.types import BackendError, Conversation


def answer_tokens(tokenizer, conversation: Conversation) -> tuple[list[int], int]:
    """(token ids of the whole rendered conversation, index of the answer's first token)."""
    if not conversation or conversation[-1].get("role") != "assistant":
        raise BackendError("a conversation to score must end with the assistant answer to score")
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    prompt = tokenizer.apply_chat_template(conversation[:-1], tokenize=False, add_generation_prompt=True)
    if not text.startswith(prompt):
        raise BackendError("the chat template does not render the prompt as a prefix of the conversation")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in encoding["offset_mapping"]]
    first = next((i for i, start in enumerate(starts) if start >= len(prompt)), len(starts))
    if first == 0 or first == len(starts):
        raise BackendError("nothing to score: the answer renders to no token after a non-empty prompt")
    return list(encoding["input_ids"]), first
