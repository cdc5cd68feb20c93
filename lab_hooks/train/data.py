"""Training samples -> token ids with loss masks -> packed micro-batches.

A sample is an InstructLab `messages` record: {"id", "messages": [{"role", "content"}],
"metadata", "unmask"}. It is rendered with the student's own chat template, so the
model trains on exactly the text it will see when served. Loss is taken on assistant
turns only, or on user and assistant turns when the sample is `unmask` (knowledge
phase-1 data, which teaches the document text itself). System turns never train.

Packing: the samples of a micro-batch are concatenated into one row with position ids
that restart at 0 for every sample. transformers turns restarting position ids into a
block-diagonal causal mask (sdpa/eager) or variable-length kernels (flash attention), so
no token attends across samples and no padding is spent; the first token of every sample
is never a target, so no sample learns to predict its neighbour. Samples go into rows of
at most `max_tokens` by first-fit decreasing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

IGNORE = -100  # label that cross-entropy skips

TRAINED_ROLES = {False: ("assistant",), True: ("user", "assistant")}


class SampleError(ValueError):
    """A sample that is not a usable `messages` record (counted, then dropped)."""


@dataclass(frozen=True)
class Tokenized:
    sample_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def _render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _messages(sample: dict) -> list[dict]:
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SampleError("no messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise SampleError("a message without string content")
        if message.get("role") not in ("system", "user", "assistant"):
            raise SampleError(f"unknown role {message.get('role')!r}")
    if not any(m["role"] == "assistant" for m in messages):
        raise SampleError("no assistant turn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def tokenize_sample(sample: dict, tokenizer) -> Tokenized:
    """Render with the chat template; label the tokens of the trained turns.

    Turn boundaries are found in characters (the template renders each prefix of the
    conversation as a prefix of the whole text) and mapped to tokens through the fast
    tokenizer's offsets, so a BPE merge across a boundary cannot shift the mask.
    """
    messages = _messages(sample)
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] not in TRAINED_ROLES[bool(sample.get("unmask"))]:
            continue
        # An assistant turn trains from after its header ("<|im_start|>assistant\n").
        start = _render(tokenizer, messages[:i], generation_prompt=message["role"] == "assistant")
        end = _render(tokenizer, messages[: i + 1])
        if not (text.startswith(start) and text.startswith(end)):
            raise SampleError("the chat template does not render prefixes as prefixes")
        spans.append((len(start), len(end)))
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoding["input_ids"]
    labels = [
        token if any(lo <= char_start < hi for lo, hi in spans) else IGNORE
        for token, (char_start, _) in zip(ids, encoding["offset_mapping"])
    ]
    if labels:
        labels[0] = IGNORE  # in a packed row it would be predicted from the previous sample
    return Tokenized(str(sample.get("id", "")), tuple(ids), tuple(labels))


@dataclass(frozen=True)
class Prepared:
    samples: list[Tokenized]
    dropped: dict[str, int]  # reason -> count, reported, never silent


def prepare(samples: list[dict], tokenizer, max_seq_len: int, min_trained_tokens: int) -> Prepared:
    """Tokenize all samples; drop (and count) malformed, too-long and too-short ones."""
    kept, dropped = [], Counter()
    for sample in samples:
        try:
            tokenized = tokenize_sample(sample, tokenizer)
        except SampleError:
            dropped["malformed"] += 1
            continue
        if len(tokenized.input_ids) > max_seq_len:
            dropped["too_long"] += 1
        elif tokenized.trained_tokens < min_trained_tokens:
            dropped["too_short"] += 1
        else:
            kept.append(tokenized)
    return Prepared(kept, dict(dropped))


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins (lists of indices) of total length <= capacity; a longer item gets its own bin."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


def split_across_ranks(lengths: list[int], world_size: int) -> list[list[int]]:
    """Indices per rank with balanced token counts (longest first to the least loaded)."""
    shares: list[list[int]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        shares[rank].append(i)
        load[rank] += lengths[i]
    return shares


def packed_row(samples: list[Tokenized]) -> dict[str, list[int]]:
    """One flattened row: concatenated ids and labels, position ids restarting per sample."""
    row = {"input_ids": [], "labels": [], "position_ids": []}
    for sample in samples:
        row["input_ids"] += sample.input_ids
        row["labels"] += sample.labels
        row["position_ids"] += range(len(sample.input_ids))
    return row


EMPTY_ROW = {"input_ids": [0], "labels": [IGNORE], "position_ids": [0]}  # trains nothing


def rank_rows(batch: list[Tokenized], world_size: int, rank: int, max_tokens: int) -> list[dict[str, list[int]]]:
    """This rank's packed rows of a step: a token-balanced share of the batch, packed.

    Every rank gets as many rows, empty ones filling up: under FSDP2 each forward and
    backward is a collective that all ranks run together. Every rank packs every share
    (cheap, deterministic), so no message is needed to agree on the count.
    """
    shares = split_across_ranks([len(s.input_ids) for s in batch], world_size)
    bins = [first_fit_decreasing([len(batch[i].input_ids) for i in share], max_tokens) for share in shares]
    share = shares[rank]
    rows = [packed_row([batch[share[i]] for i in bin_]) for bin_ in bins[rank]]
    return rows + [EMPTY_ROW] * (max(map(len, bins)) - len(rows))
