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

from gateway.engines import Tokens


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


def join_inputs(tokenizer: PreTrainedTokenizerBase, texts: list[str],
                prompt: str | None = None) -> SpanTokens:
    """Tokenize ``texts`` into one sequence: specials, prompt, each text in order, closing specials.

    Raises:
        ValueError: a text has no tokens (nothing to pool), naming its index.
    """
    pieces = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    empty = next((i for i, ids in enumerate(pieces) if not ids), None)
    if empty is not None:
        raise ValueError(f"input {empty} has no tokens")
    head, tail = special_frame(tokenizer)
    ids = list(head)
    if prompt:
        ids += tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
    spans = []
    for piece in pieces:
        spans.append((len(ids), len(ids) + len(piece)))
        ids += piece
    return SpanTokens(ids + tail, spans=spans)
