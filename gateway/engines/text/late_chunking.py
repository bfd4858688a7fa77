"""Late chunking: several inputs embedded as one sequence, each pooled over its own tokens.

As Jina defines it (https://arxiv.org/abs/2409.04701, ``late_chunking`` of https://api.jina.ai/redoc): the
chunks of a document are encoded together, so each token's output state has seen the whole document,
and each chunk's vector is the mean of its own tokens' states (the special tokens and the prompt belong to
no chunk). Only mean-pooled models have a meaning for it.

An optional engine capability, in two calls:

- ``tokenize_joined(texts, prompt=None) -> SpanTokens`` (tokenizer thread): each text tokenized on its
  own, joined in order after the prompt, inside the tokenizer's special tokens; untruncated, the caller
  checks the length against ``spec.max_tokens``.
- ``embed_spans(batch: list[SpanTokens]) -> list[np.ndarray]`` (runner thread, the runner's ``spans``
  kind): per sequence, ``(len(spans), dim)`` float32, each row the mean of the transformer's output states
  over one span, then the model's modules after pooling (Dense...), before any final Normalize.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from gateway.engines import InputTooLong, Tokens
from gateway.engines.text.windows import WINDOW_CHARS_PER_TOKEN
from gateway.errors import UnprocessableInput


@dataclass(slots=True)
class SpanTokens(Tokens):
    """One joined sequence and where each input sits in it.

    Attributes:
        spans: ``(start, stop)`` token positions of each input in ``ids``, in input order.
    """

    spans: list[tuple[int, int]] = field(default_factory=list)


def special_frame(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one text (``[CLS]`` / ``[SEP]``, ...)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


JOIN_GROUP = 32  # texts tokenized per call while the joined length is checked against the limit


def join_inputs(tokenizer: PreTrainedTokenizerBase, texts: list[str], prompt: str | None = None,
                limit: int | None = None) -> SpanTokens:
    """Tokenize ``texts`` into one sequence: specials, prompt, each text in order, closing specials.

    With a ``limit`` (the model's context), tokenizing stops as soon as the sequence is longer, and a text
    longer than ``limit * WINDOW_CHARS_PER_TOKEN`` characters counts as too long without being tokenized
    in full, so a huge request costs no more than one that fits.

    Raises:
        UnprocessableInput: a text has no tokens (nothing to pool), naming its index.
        InputTooLong: the sequence is longer than ``limit`` (``index``: the text where it overflowed;
            ``length``: the tokens counted so far, a lower bound).
    """

    head, tail = special_frame(tokenizer)
    ids = list(head)
    if prompt:
        ids += tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
    if limit is None:
        pieces = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    else:
        chars, pieces, total = limit * WINDOW_CHARS_PER_TOKEN, [], len(ids) + len(tail)
        for start in range(0, len(texts), JOIN_GROUP):
            group = texts[start:start + JOIN_GROUP]
            for offset, text in enumerate(group):
                if len(text) > chars:
                    raise InputTooLong(start + offset, limit + 1, limit, at_least=True)
            group_ids = tokenizer(group, add_special_tokens=False, verbose=False)["input_ids"]
            for offset, piece in enumerate(group_ids):
                pieces.append(piece)
                total += len(piece)
                if total > limit:
                    raise InputTooLong(start + offset, total, limit, at_least=start + offset < len(texts) - 1)
    empty = next((i for i, piece in enumerate(pieces) if not piece), None)
    if empty is not None:
        raise UnprocessableInput(f"input {empty} has no tokens")
    spans = []
    for piece in pieces:
        spans.append((len(ids), len(ids) + len(piece)))
        ids += piece
    return SpanTokens(ids + tail, spans=spans)
