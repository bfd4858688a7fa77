"""Jina AI embeddings fields, served on the OpenAI route (Jina's response is the OpenAI shape).

Spec: https://api.jina.ai/redoc#tag/embeddings (``POST /v1/embeddings``) and
https://jina.ai/news/late-chunking-in-long-context-embedding-models/ for ``late_chunking``.

- ``task``: the model's prompt of that name when it has one (jina-embeddings-v3's sentence-transformers
  config names its prompts after the tasks), else ``retrieval.query`` / ``code.query`` use the model's
  query prompt and ``retrieval.passage`` / ``code.passage`` its document prompt; other tasks add nothing.
- ``embedding_type`` (also its older name ``encoding_type``, which LlamaIndex's ``JinaEmbedding`` sends):
  ``float``, ``base64`` (little-endian float32), or the integer lists ``int8``, ``uint8``, ``binary``,
  ``ubinary`` (packed sign bits; ``binary`` as int8).
- ``normalized``: true L2-normalizes, false returns the model's vectors before its final normalization,
  absent does what the model does. ``truncate``: true cuts a too-long input, false makes it a 400, absent
  follows the model's policy.
- ``late_chunking``: the inputs are embedded as one sequence (each input tokenized on its own, joined in
  order inside one pair of special tokens, the task prompt first) and each vector is the mean of its own
  tokens' output states, so every chunk sees the others as context. The whole sequence must fit the
  model's context (400 otherwise); needs a mean-pooled model.
- Errors also carry ``detail``, which Jina's clients read (``gateway.protocol.openai_dialects``).
"""

from __future__ import annotations

from typing import Literal

Task = Literal[
    "retrieval.query", "retrieval.passage", "text-matching", "classification", "separation",
    "code.query", "code.passage",
]
EmbeddingType = Literal["float", "base64", "binary", "ubinary", "int8", "uint8"]


def prompt_names(task: str) -> tuple[str, ...]:
    """Model prompt names to try for ``task``, first found wins: the task itself, then its role."""
    if task.endswith(".query"):
        return task, "query"
    if task.endswith(".passage"):
        return task, "document"
    return (task,)
