"""Texts tokenized with a request's prompt (a query or document prompt), the way the model takes prompts.

Most models take a prompt as a text prefix (``"query: " + text``). Models whose ``ModelSpec.instructions``
is set (vision-language embedders) take it as an instruction their own prompt format places (a chat
template's system message): their texts go through ``Engine.encode_items(..., prompt=...)``, exactly like
their image inputs, so a text query and an image document are embedded the way the model card does.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.engines import Engine, Tokens
from gateway.inputs import InputItem


def prompted_tokenizer(engine: Engine, prompt: str | None) -> Callable[..., list[Tokens]]:
    """A ``tokenize(texts, **options)`` function that applies ``prompt`` (None or empty: no prompt).

    ``options`` are ``Engine.tokenize``'s (``truncate``, ``max_tokens``, ``truncation_side``).
    """
    if getattr(getattr(engine, "spec", None), "instructions", False):  # duck-typed engines may lack a spec
        def instructed(texts: list[str], **options) -> list[Tokens]:
            items = [InputItem.of_text(text) for text in texts]
            return engine.encode_items(items, prompt=prompt or None, **options)

        return instructed

    def prefixed(texts: list[str], **options) -> list[Tokens]:
        return engine.tokenize([prompt + text for text in texts] if prompt else texts, **options)

    return prefixed
