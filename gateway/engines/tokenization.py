"""Tokenization shared by the torch and MLX engines, with a Hugging Face tokenizer.

Inputs longer than the limit are either cut with the tokenizer's own truncation strategy (pairs:
``longest_first``) or rejected with ``InputTooLong``. Qwen3-Reranker pairs are wrapped in the
model's official chat prompt (see ``Qwen3RerankPrompt``).
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from gateway.engines import InputTooLong, Tokens


def encode(
    tokenizer: PreTrainedTokenizerBase, inputs: dict[str, list[str]], limit: int, truncate: bool
) -> list[Tokens]:
    """Tokenize ``inputs`` (``text``, optionally ``text_pair``) with special tokens, at most ``limit`` long.

    Raises:
        InputTooLong: an input is longer than ``limit`` and ``truncate`` is False.
    """
    full = tokenizer(**inputs, add_special_tokens=True, truncation=False, verbose=False)
    too_long = [i for i, ids in enumerate(full["input_ids"]) if len(ids) > limit]
    if too_long and not truncate:
        raise InputTooLong(too_long[0], len(full["input_ids"][too_long[0]]), limit)
    pairs = "text_pair" in inputs
    out = [
        Tokens(ids, full["token_type_ids"][i] if pairs and "token_type_ids" in full else None)
        for i, ids in enumerate(full["input_ids"])
    ]
    if too_long:  # re-tokenize only the long ones, with the tokenizer's own truncation strategy
        subset = {key: [values[i] for i in too_long] for key, values in inputs.items()}
        cut = tokenizer(**subset, add_special_tokens=True, truncation=True, max_length=limit)
        for j, i in enumerate(too_long):
            types = cut["token_type_ids"][j] if pairs and "token_type_ids" in cut else None
            out[i] = Tokens(cut["input_ids"][j], types, truncated=True)
    return out


def split_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (no specials), cut at token offsets."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return [text]
    starts = [offsets[i][0] for i in range(0, len(offsets), max_tokens)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


class Qwen3RerankPrompt:
    """The official Qwen3-Reranker prompt: a yes/no judgement of a document for a query.

    Each pair becomes ``prefix + tokens("<Instruct>: ...\\n<Query>: ...\\n<Document>: ...") + suffix``;
    only the middle part is truncated, exactly as the model card's reference code does.
    """

    SYSTEM = (
        "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
        'Note that the answer can only be "yes" or "no".'
    )
    PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
    SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, instruction: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.instruction = instruction or self.DEFAULT_INSTRUCTION
        self.prefix_ids = tokenizer.encode(self.PREFIX, add_special_tokens=False)
        self.suffix_ids = tokenizer.encode(self.SUFFIX, add_special_tokens=False)
        self.yes_id = tokenizer.convert_tokens_to_ids("yes")
        self.no_id = tokenizer.convert_tokens_to_ids("no")

    def body(self, query: str, document: str) -> str:
        """The user message for one pair (without the chat frame)."""
        return f"<Instruct>: {self.instruction}\n<Query>: {query}\n<Document>: {document}"

    def tokenize_pairs(self, pairs: list[tuple[str, str]], limit: int, truncate: bool) -> list[Tokens]:
        """Tokenize ``(query, document)`` pairs into full prompts of at most ``limit`` tokens.

        Raises:
            InputTooLong: a prompt is longer than ``limit`` and ``truncate`` is False.
        """
        frame = len(self.prefix_ids) + len(self.suffix_ids)
        texts = [self.body(query, document) for query, document in pairs]
        try:
            bodies = encode(self.tokenizer, {"text": texts}, limit - frame, truncate)
        except InputTooLong as err:
            raise InputTooLong(err.index, err.length + frame, limit) from None
        return [Tokens(self.prefix_ids + t.ids + self.suffix_ids, None, t.truncated) for t in bodies]
