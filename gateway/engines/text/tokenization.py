"""Tokenization shared by the torch and MLX engines, with a Hugging Face tokenizer.

Inputs longer than the limit are either cut with the tokenizer's own truncation strategy (pairs:
``longest_first``) or rejected with ``InputTooLong``. Qwen3-Reranker pairs are wrapped in the
model's official chat prompt (see ``Qwen3RerankPrompt``).
"""

from __future__ import annotations

from typing import Literal

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

try:  # transformers 5; with 4.x every call goes through ``tokenizer(...)`` (see ``untruncated``)
    from transformers.tokenization_utils_tokenizers import TokenizersBackend
except ImportError:
    TokenizersBackend = None

from gateway.engines import InputTooLong, ModelSpec, Tokens, TokenSpan
from gateway.engines.text.late_chunking import SpanTokens, join_inputs
from gateway.engines.text.windows import (
    WINDOW_CHARS_PER_TOKEN,
    WINDOW_MARGIN,
    WINDOW_MAX_CHARS_PER_TOKEN,
    char_window,
)
from gateway.errors import UnprocessableInput


def encode(
    tokenizer: PreTrainedTokenizerBase,
    inputs: dict[str, list[str]],
    limit: int,
    truncate: bool,
    side: Literal["right", "left"] = "right",
) -> list[Tokens]:
    """Tokenize ``inputs`` (``text``, optionally ``text_pair``) with special tokens, at most ``limit`` long.

    ``side`` is where long inputs are cut: ``right`` drops their end, ``left`` their start. Calls run one
    at a time, under the model's tokenizer lock (``ServedModel.tokenize``), so switching the tokenizer's
    ``truncation_side`` for one call is safe.

    Each text is tokenized through a window of ``limit * WINDOW_CHARS_PER_TOKEN`` characters at the kept
    side (see ``char_window``), widened (up to ``WINDOW_MAX_CHARS_PER_TOKEN``) while it holds fewer than
    ``limit + WINDOW_MARGIN`` tokens and is not the whole text: the CPU an input costs is bounded by the
    limit, not its length. A truncated input's tokens are those of its window, truncated (for real text,
    the same as cutting the whole text).

    Raises:
        InputTooLong: an input is longer than ``limit`` and ``truncate`` is False (its ``length`` is then
            the tokens of its window, a lower bound, when it was not tokenized in full).
    """
    chars = limit * WINDOW_CHARS_PER_TOKEN
    windows = {key: [char_window(text, chars, side) for text in values] for key, values in inputs.items()}
    rows, types = untruncated(tokenizer, windows)

    def windowed(i: int) -> bool:  # input i was cut to its window (not tokenized in full)
        return any(windows[key][i] is not inputs[key][i] for key in inputs)

    def undecided_of(indices) -> list[int]:  # windows with too few tokens to decide (mostly whitespace)
        return [i for i in indices if len(rows[i]) < limit + WINDOW_MARGIN and windowed(i)]

    undecided = undecided_of(range(len(rows)))  # widened until they decide
    while undecided and chars < limit * WINDOW_MAX_CHARS_PER_TOKEN:
        chars *= 4
        for key in inputs:
            for i in undecided:
                windows[key][i] = char_window(inputs[key][i], chars, side)
        again_rows, again_types = untruncated(tokenizer, {key: [windows[key][i] for i in undecided]
                                                          for key in inputs})
        for j, i in enumerate(undecided):
            rows[i] = again_rows[j]
            if types is not None and again_types is not None:
                types[i] = again_types[j]
        undecided = undecided_of(undecided)
    too_long = [i for i, ids in enumerate(rows) if len(ids) > limit]
    if too_long and not truncate:
        first = too_long[0]
        raise InputTooLong(first, len(rows[first]), limit, at_least=windowed(first))
    pairs = "text_pair" in inputs
    out = [Tokens(ids, types[i] if pairs and types is not None else None) for i, ids in enumerate(rows)]
    if too_long:  # re-tokenize only the long ones (their windows), with the tokenizer's own truncation
        subset = {key: [values[i] for i in too_long] for key, values in windows.items()}
        default_side, tokenizer.truncation_side = tokenizer.truncation_side, side
        try:
            cut = tokenizer(**subset, add_special_tokens=True, truncation=True, max_length=limit)
        finally:
            tokenizer.truncation_side = default_side
        for j, i in enumerate(too_long):
            cut_types = cut["token_type_ids"][j] if pairs and "token_type_ids" in cut else None
            out[i] = Tokens(cut["input_ids"][j], cut_types, truncated=True)
    return out


def untruncated(tokenizer: PreTrainedTokenizerBase,
                inputs: dict[str, list[str]]) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids of ``inputs`` (``text``, optionally ``text_pair``) with special tokens, not truncated, and
    their token type ids when the tokenizer makes them (None otherwise).

    Plain texts of a fast tokenizer go straight to its Rust ``encode_batch``, as ``tokenizer(...)``
    would send them after resetting truncation and padding (``set_truncation_and_padding``), without
    the Python around that call: 38 -> 23 µs of CPU for one short query with MiniLM's tokenizer, paid
    by every one-text request. Pairs, and tokenizers that change that call, go through ``tokenizer``.
    """
    backend = _plain_backend(tokenizer)
    if backend is None or set(inputs) != {"text"}:
        full = tokenizer(**inputs, add_special_tokens=True, truncation=False, verbose=False)
        return list(full["input_ids"]), list(full["token_type_ids"]) if "token_type_ids" in full else None
    if backend.truncation is not None:  # left behind by a truncating call (see ``encode``)
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    if backend.encode_special_tokens != tokenizer.split_special_tokens:
        backend.encode_special_tokens = tokenizer.split_special_tokens
    texts = inputs["text"]
    if len(texts) == 1:  # ``encode_batch`` hands even one text to its thread pool: a wake-up, ~35 µs
        return [backend.encode(texts[0], add_special_tokens=True).ids], None
    return [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=True)], None


def _plain_backend(tokenizer: PreTrainedTokenizerBase):
    """The ``tokenizers.Tokenizer`` that ``tokenizer`` hands plain texts to unchanged, or None: a slow
    tokenizer, or a class that overrides the call path (its own ``_encode_plus`` or ``__call__``)."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if TokenizersBackend is None or not isinstance(tokenizer, TokenizersBackend):
        return None
    if not isinstance(backend, Tokenizer):
        return None
    cls = type(tokenizer)
    plain = (cls._encode_plus is TokenizersBackend._encode_plus and cls.__call__ is TokenizersBackend.__call__
             and cls.set_truncation_and_padding is TokenizersBackend.set_truncation_and_padding)
    return backend if plain else None


def split_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (no specials), cut at token offsets."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return [text]
    starts = [offsets[i][0] for i in range(0, len(offsets), max_tokens)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def is_qwen3_reranker(task: str, hf_config: dict) -> bool:
    """A rerank model that is a Qwen3 causal LM scores with the Qwen3-Reranker yes/no prompt."""
    return task == "rerank" and "Qwen3ForCausalLM" in (hf_config.get("architectures") or [])


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
            raise InputTooLong(err.index, err.length + frame, limit, err.at_least) from None
        return [Tokens(self.prefix_ids + t.ids + self.suffix_ids, None, t.truncated) for t in bodies]


class HFTokenization:
    """The tokenization half of the ``Engine`` interface, for engines that use a Hugging Face tokenizer.

    Subclasses set ``tokenizer``, ``spec`` and ``rerank_prompt`` (a ``Qwen3RerankPrompt`` for Qwen3-style
    decoder rerankers, else None). Methods run one at a time, under the model's tokenizer lock.
    """

    tokenizer: PreTrainedTokenizerBase
    spec: ModelSpec
    rerank_prompt: Qwen3RerankPrompt | None = None

    def tokenize(
        self,
        texts: list[str],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
    ) -> list[Tokens]:
        """See ``Engine.tokenize``."""
        limit = min(max_tokens or self.spec.max_tokens, self.spec.max_tokens)
        limit = max(limit, self.tokenizer.num_special_tokens_to_add() + 1)  # keep one text token
        return encode(self.tokenizer, {"text": texts}, limit, truncate, truncation_side)

    def tokens_from_ids(
        self,
        ids: list[list[int]],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
    ) -> list[Tokens]:
        """See ``Engine.tokens_from_ids``."""
        self.check_ids(ids)
        limit = min(max_tokens or self.spec.max_tokens, self.spec.max_tokens)
        out = []
        for index, row in enumerate(ids):
            if len(row) <= limit:
                out.append(Tokens(list(row)))
            elif not truncate:
                raise InputTooLong(index, len(row), limit)
            else:
                kept = row[:limit] if truncation_side == "right" else row[-limit:]
                out.append(Tokens(list(kept), truncated=True))
        return out

    def check_ids(self, ids: list[list[int]]) -> None:
        """Raises UnprocessableInput when an id is outside the tokenizer's vocabulary."""
        vocab = len(self.tokenizer)
        bad = next((i for row in ids for i in row if not 0 <= i < vocab), None)
        if bad is not None:
            raise UnprocessableInput(f"token id {bad} is not in this model's vocabulary (0..{vocab - 1})")

    def tokenize_pairs(self, pairs: list[tuple[str, str]], *, truncate: bool = True) -> list[Tokens]:
        """See ``Engine.tokenize_pairs``; Qwen3 rerankers get their official yes/no prompt."""
        if self.rerank_prompt is not None:
            return self.rerank_prompt.tokenize_pairs(pairs, self.spec.max_tokens, truncate)
        inputs = {"text": [q for q, _ in pairs], "text_pair": [d for _, d in pairs]}
        return encode(self.tokenizer, inputs, self.spec.max_tokens, truncate)

    def split_text(self, text: str, max_tokens: int) -> list[str]:
        """See ``Engine.split_text``."""
        return split_text(self.tokenizer, text, max_tokens)

    def tokenize_joined(self, texts: list[str], *, prompt: str | None = None) -> SpanTokens:
        """Late chunking: ``texts`` as one sequence, with their spans (``text.late_chunking``)."""
        return join_inputs(self.tokenizer, texts, prompt, limit=self.spec.max_tokens)

    def tokenize_spans(self, texts: list[str], *, add_special_tokens: bool = True) -> list[list[TokenSpan]]:
        """See ``Engine.tokenize_spans``."""
        enc = self.tokenizer(texts, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                             return_special_tokens_mask=True, truncation=False, verbose=False)
        out = []
        for text, ids, offsets, specials in zip(
            texts, enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"], strict=True
        ):
            names = self.tokenizer.convert_ids_to_tokens(ids)
            out.append([
                TokenSpan(i, name, True, None, None) if special else TokenSpan(i, text[a:b], False, a, b)
                for i, name, (a, b), special in zip(ids, names, offsets, specials, strict=True)
            ])
        return out

    def decode(self, ids: list[list[int]], *, skip_special_tokens: bool = True) -> list[str]:
        """See ``Engine.decode``."""
        self.check_ids(ids)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=skip_special_tokens)
