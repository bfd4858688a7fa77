"""Turn a rerank request into model inputs: chunk long documents and tokenize, under the tokenizer lock.

Cross-encoders get one ``(query, chunk)`` pair per chunk; bi-encoders get the query (with the model's
query prompt) followed by every chunk (with its document prompt); a multi-vector (ColBERT) model tokenizes
the query on its query side and the chunks on its document side (``Tokens.task``). Chunks of one
document are contiguous, so a document's best chunk is a ``np.maximum.reduceat`` over ``first_chunk``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.config import ModelConfig
from gateway.engines import Engine, InputTooLong, Tokens
from gateway.engines.text.windows import WINDOW_CHARS_PER_TOKEN, char_window
from gateway.errors import InvalidRequest, UnprocessableInput
from gateway.inputs import Overflow
from gateway.serving.prompted import prompted_tokenizer

DEFAULT_MAX_CHUNKS_PER_DOC = 10  # Cohere v1's default


@dataclass(slots=True)
class RerankInputs:
    """Tokenized inputs of one rerank request.

    Attributes:
        batch: ``(query, chunk)`` pairs for a cross-encoder, or ``[query, *chunks]`` for a bi-encoder.
        first_chunk: ``(n_documents,)`` int64, where each document's chunks start among the chunk scores.
        tokens: model tokens in ``batch`` (special tokens included).
        cross_encoder: whether ``batch`` holds pairs to score rather than texts to embed.
    """

    batch: list[Tokens]
    first_chunk: np.ndarray
    tokens: int
    cross_encoder: bool


def rerank_prompts(engine: Engine, config: ModelConfig) -> tuple[str, str]:
    """(query prompt, document prompt): the configured ones, else the model's own ``query`` / ``document``."""
    prompts = engine.spec.prompts
    query = config.query_prompt if config.query_prompt is not None else prompts.get("query", "")
    default_document = prompts.get("document", prompts.get("passage", ""))
    document = config.document_prompt if config.document_prompt is not None else default_document
    return query, document


class Sided:
    """An engine whose ``tokenize`` always encodes for one side (``query`` / ``document``) of a model whose
    sides differ (multi-vector), so ``prompted_tokenizer`` can wrap it like any engine."""

    def __init__(self, engine: Engine, task: str) -> None:
        self.engine, self.task, self.spec = engine, task, engine.spec

    def tokenize(self, texts: list[str], **options) -> list[Tokens]:
        return self.engine.tokenize(texts, task=self.task, **options)


def side(engine: Engine, task: str) -> Engine | Sided:
    """``engine`` itself, or bound to ``task``'s side when it is a multi-vector model."""
    outputs = engine.spec.outputs
    return Sided(engine, task) if "multi_vector" in outputs and "dense" not in outputs else engine


def prepare_inputs(
    engine: Engine,
    config: ModelConfig,
    query: str,
    documents: list[str],
    *,
    overflow: Overflow = "chunk",
    max_chunks_per_doc: int | None = None,
    max_tokens_per_doc: int | None = None,
    param: str = "documents",
) -> RerankInputs:
    """Chunk and tokenize a rerank request (call through ``ServedModel.tokenize``).

    The query follows the model's truncation policy; documents follow ``overflow`` (see
    ``gateway.serving.rerank.rerank``).

    Raises:
        InvalidRequest: the query is too long under the ``reject`` policy, or a document is too long
            with ``overflow="reject"``.
    """
    cross = engine.spec.task == "rerank"
    limit = engine.spec.max_tokens
    truncate_query = config.truncation == "truncate"
    query_prompt, document_prompt = rerank_prompts(engine, config)
    if cross:  # room left beside the query and the special tokens; past half, the pair truncation cuts both
        head = _tokenize(engine.tokenize_pairs, [(query, "")], truncate_query, "query", cross)
        budget = max(limit - len(head[0]), limit // 2)
    else:  # prompts as the model takes them: text prefixes, or instructions (prompted.py)
        head = _tokenize(prompted_tokenizer(side(engine, "query"), query_prompt), [query], truncate_query,
                         "query", cross)
        budget = limit - len(prompted_tokenizer(side(engine, "document"), document_prompt)([""])[0])
    budget = max(1, min(budget, max_tokens_per_doc or budget))
    max_chunks = max_chunks_per_doc or DEFAULT_MAX_CHUNKS_PER_DOC
    chunked = [fit_document(engine, text, budget, overflow, max_chunks) for text in documents]
    chunks = [chunk for doc_chunks in chunked for chunk in doc_chunks]
    first_chunk = np.cumsum([0, *(len(c) for c in chunked[:-1])], dtype=np.int64)
    truncate = overflow != "reject"
    if cross:
        batch = _tokenize(engine.tokenize_pairs, [(query, c) for c in chunks], truncate, param, cross)
    else:
        document_tokenizer = prompted_tokenizer(side(engine, "document"), document_prompt)
        batch = head + _tokenize(document_tokenizer, chunks, truncate, param, cross)
    return RerankInputs(batch, first_chunk, sum(len(t) for t in batch), cross)


def fit_document(engine: Engine, text: str, budget: int, overflow: Overflow, max_chunks: int) -> list[str]:
    """The chunks of ``text`` to score, each at most ``budget`` model tokens (no special tokens).

    Only a window of the text is split (``tokenization.char_window``): the characters the kept chunks can
    come from, so a huge document costs what a long one does.
    """
    # Fast path: no tokenizer we serve makes more tokens than UTF-8 bytes + 1, so short texts fit as is.
    if overflow in ("truncate", "reject") or len(text.encode()) < budget:
        return [text]
    if overflow == "truncate_left":
        window = char_window(text, budget * WINDOW_CHARS_PER_TOKEN, "left")
        pieces = engine.split_text(window, 1)  # one piece per token, so the tail keeps exactly `budget`
        return ["".join(pieces[-budget:])]
    window = char_window(text, budget * max_chunks * WINDOW_CHARS_PER_TOKEN)
    return engine.split_text(window, budget)[:max_chunks]


def _tokenize(func: Callable, inputs: list, truncate: bool, param: str, cross: bool) -> list[Tokens]:
    """``func(inputs, truncate=truncate)``, turning ``InputTooLong`` into a 400 naming ``param[index]``."""
    try:
        return func(inputs, truncate=truncate)
    except InputTooLong as exc:
        name = "query" if param == "query" else f"{param}[{exc.index}]"
        paired = " with the query" if cross and param != "query" else ""
        raise InvalidRequest(
            f"'{name}' is {exc.length_text} tokens long{paired}; this model accepts at most {exc.limit}",
            param=param,
            code="context_length_exceeded",
        ) from None
    except UnprocessableInput as exc:  # a text the model cannot embed (a vision-language model's image token)
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None
