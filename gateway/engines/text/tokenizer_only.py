"""The tokenization half of an engine, without its weights: for a process that tokenizes for a model whose
forward passes run elsewhere (the Ray Serve ingress, ``gateway.deploy``).

The tokenizer, ``ModelSpec`` and rerank prompt are the loaded engine's own, shipped from the process that
holds the weights (HF tokenizers pickle), so inputs are tokenized exactly as that engine would, and the
ingress needs neither the model files nor torch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from transformers import PreTrainedTokenizerBase

from gateway.engines import ModelSpec, Tokens
from gateway.engines.text.tokenization import HFTokenization, Qwen3RerankPrompt


@dataclasses.dataclass(slots=True)
class Tokenization:
    """What a tokenize-only copy of a loaded engine needs (picklable).

    Attributes:
        spec: the engine's ``ModelSpec``.
        tokenizer: its Hugging Face tokenizer.
        rerank_prompt: its Qwen3-Reranker prompt, or None.
    """

    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    rerank_prompt: Qwen3RerankPrompt | None = None

    @classmethod
    def of(cls, engine: HFTokenization) -> Tokenization:
        """The tokenization state of a loaded engine.

        Raises:
            TypeError: the engine does not tokenize with a Hugging Face tokenizer.
        """
        if not isinstance(engine, HFTokenization):
            raise TypeError(f"{type(engine).__name__} has no Hugging Face tokenizer to share")
        return cls(engine.spec, engine.tokenizer, engine.rerank_prompt)


class TokenizerOnlyEngine(HFTokenization):
    """An ``Engine`` that tokenizes like the original and refuses forward passes.

    Only text inputs: image preprocessing (``encode_items``) stays with the weights, so the spec served
    here says ``modalities=("text",)`` and image inputs get the usual 400.
    """

    def __init__(self, tokenization: Tokenization) -> None:
        self.spec = dataclasses.replace(tokenization.spec, modalities=("text",), fuses=False)
        self.tokenizer = tokenization.tokenizer
        self.rerank_prompt = tokenization.rerank_prompt

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """Never called: this engine's runner sends batches to the process holding the weights."""
        raise RuntimeError("a tokenizer-only engine has no weights to run")

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Never called (see ``embed``)."""
        raise RuntimeError("a tokenizer-only engine has no weights to run")
