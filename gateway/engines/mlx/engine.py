"""MLX engine (Apple Silicon GPU; also runs on CPU with ``mlx[cpu]``): the ``Engine`` interface on MLX models.

Families (see ``models``): encoder embedders and cross-encoders (BERT, XLM-RoBERTa, ModernBERT)
on mlx-embeddings; decoder embedders (Qwen3-Embedding, plain or MLX-quantized) and the Qwen3-Reranker
on mlx-lm. Tokenization uses the folder's Hugging Face tokenizer, like the torch engine, so both
engines feed identical token ids. Pooling and normalization follow the folder's sentence-transformers
pipeline (``folder``), overridable by ``ModelConfig.pooling`` / ``normalize``.

Full-precision folders are quantized at load by ``ModelConfig.quantize`` (``quantize.resolve``:
for ``auto``, only when the weights exceed a quarter of the machine's memory); pre-quantized folders
load as they are. Cross-encoder heads stay
in full precision, and pooling and logits are computed in float32.

Threading: MLX 0.32 gives every thread its own default stream, so the runner thread may run forward
passes on a model loaded by another thread. Each call evaluates its result and returns numpy, so no
lazy graph crosses threads.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from transformers import AutoTokenizer

from gateway.config import ModelConfig
from gateway.engines import ModelSpec, Tokens
from gateway.engines.mlx.folder import FolderInfo, read_folder
from gateway.engines.mlx.models import decoder_lm_logits, is_encoder, load_decoder, load_encoder, pool
from gateway.engines.mlx.quantize import (
    QuantizeChoice,
    announce,
    folder_weight_sizes,
    quantization_name,
    quantize_model,
    resolve,
)
from gateway.engines.mlx.weights import device_name, parameter_count, weights_dtype
from gateway.engines.text.late_chunking import SpanTokens
from gateway.engines.text.tokenization import HFTokenization, Qwen3RerankPrompt, is_qwen3_reranker

CLEAR_CACHE_TOKENS = 16384  # padded tokens in a batch from which we hand MLX's buffer cache back


def max_tokens_of(config: ModelConfig, folder: FolderInfo, tokenizer) -> int:
    """The input limit: the folder's ``max_seq_length``, else the tokenizer's capped at the model's positions
    (as sentence-transformers does), then capped by ``config.max_tokens``."""
    limit = folder.max_seq_length or tokenizer.model_max_length
    positions = folder.hf_config.get("max_position_embeddings")
    if folder.max_seq_length is None and positions and positions > 0:
        limit = min(limit, positions)
    return min(config.max_tokens or limit, limit)


def load_model(config: ModelConfig, path: str, hf_config: dict) -> nn.Module:
    """The MLX model for ``config.task``: an encoder or decoder embedder, an encoder cross-encoder
    (``*ForSequenceClassification``) or a Qwen3 reranker (LM head kept for the yes/no logits).

    Raises:
        ValueError: the architecture has no MLX implementation for the task.
    """
    architectures = hf_config.get("architectures") or []
    if config.task == "embed":
        return load_encoder(path, hf_config, "embed") if is_encoder(hf_config) else load_decoder(path)
    if is_encoder(hf_config) and any(name.endswith("ForSequenceClassification") for name in architectures):
        return load_encoder(path, hf_config, "rerank")
    if is_qwen3_reranker(config.task, hf_config):
        return load_decoder(path, keep_lm_head=True)
    raise ValueError(f"the MLX engine cannot rerank with {architectures or hf_config.get('model_type')}")


def quantize_choice(config: ModelConfig, path: str, hf_config: dict) -> QuantizeChoice:
    """What ``config.quantize`` means for this folder (``quantize.resolve``), decided before loading:
    sizes from the safetensors headers, without the LM head an embedder drops and with cross-encoder
    classification heads kept at full precision, as ``apply_quantize`` does."""
    shipped = hf_config.get("quantization") or hf_config.get("quantization_config")
    prequantized = shipped["bits"] if isinstance(shipped, dict) and "bits" in shipped else None
    drop_lm_head = config.task == "embed" and not is_encoder(hf_config)
    return resolve(config.quantize, prequantized_bits=prequantized, sizes=lambda: folder_weight_sizes(
        path, keep=lambda name: name.startswith("classifier"),
        drop=lambda name: drop_lm_head and name.startswith("lm_head.")))


def apply_quantize(model: nn.Module, hf_config: dict, choice: QuantizeChoice) -> str | None:
    """Quantize ``model`` in place as ``choice`` says, skipping cross-encoder classification heads (a few
    weights that set every score). Returns the model's quantization name (``q8`` / ``q4``, also for a
    pre-quantized folder), None at full precision."""
    shipped = hf_config.get("quantization") or hf_config.get("quantization_config")
    prequantized = isinstance(shipped, dict) and "bits" in shipped
    if choice.bits is not None:
        quantize_model(model, choice.bits, skip=lambda path: path.startswith("classifier"))
        mx.eval(model.parameters())
    return quantization_name(shipped["bits"] if prequantized else choice.bits)


class MlxEngine(HFTokenization):
    """An MLX embedder or reranker behind the ``Engine`` interface (see the module docstring)."""

    def __init__(self, config: ModelConfig, path: str) -> None:
        folder = read_folder(path, pipeline=config.task == "embed")
        hf_config = folder.hf_config
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._encoder = is_encoder(hf_config)
        qwen3_reranker = is_qwen3_reranker(config.task, hf_config)
        self.rerank_prompt = Qwen3RerankPrompt(self.tokenizer) if qwen3_reranker else None
        choice = quantize_choice(config, path, hf_config)
        announce(config.name, choice)
        self.model = load_model(config, path, hf_config)
        quantization = apply_quantize(self.model, hf_config, choice)
        default_pooling, default_normalize = ("mean", False) if self._encoder else ("last", True)
        embeds = config.task == "embed"
        normalize = config.normalize if config.normalize is not None else folder.normalize
        self.spec = ModelSpec(
            name=config.name,
            task=config.task,
            max_tokens=max_tokens_of(config, folder, self.tokenizer),
            dim=int(hf_config["hidden_size"]) if embeds else 0,
            engine="mlx",
            device=device_name(),
            pooling=(config.pooling or folder.pooling or default_pooling) if embeds else "none",
            normalize=(default_normalize if normalize is None else normalize) if embeds else False,
            prompts=folder.prompts,
            dtype=weights_dtype(self.model),
            quantization=quantization,
            quantization_reason=choice.reason,
            architecture=str(hf_config.get("model_type", "")),
            parameters=parameter_count(self.model),
        )

    # -- forward passes (runner thread) ---------------------------------------------------------

    def _arrays(self, batch: list[Tokens]) -> tuple[mx.array, mx.array, mx.array | None, mx.array]:
        """Right-pad a batch into ids ``(n, L)`` int32, mask ``(n, L)`` float32, type ids ``(n, L)`` int32
        (pairs only, else None) and the index of each row's last real token ``(n,)`` int32."""
        width = max(len(t) for t in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int32)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        types = np.zeros((len(batch), width), dtype=np.int32) if batch[0].type_ids is not None else None
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)], mask[row, : len(tokens)] = tokens.ids, 1
            if types is not None and tokens.type_ids is not None:
                types[row, : len(tokens)] = tokens.type_ids
        last = np.array([len(t) - 1 for t in batch], dtype=np.int32)
        return mx.array(ids), mx.array(mask), None if types is None else mx.array(types), mx.array(last)

    def _to_numpy(self, result: mx.array, padded_tokens: int) -> np.ndarray:
        """Evaluate ``result`` here (no lazy graph leaves the engine) into float32 numpy.

        After big batches MLX's buffer cache is handed back, so one burst does not pin its peak memory.
        """
        mx.eval(result)
        out = np.array(result.astype(mx.float32))
        if padded_tokens >= CLEAR_CACHE_TOKENS:
            mx.clear_cache()
        return out

    def _hidden(self, ids: mx.array, mask: mx.array, types: mx.array | None) -> mx.array:
        """Final token states ``(n, L, H)`` of an embedder (decoders: normed, before the LM head)."""
        if self._encoder:
            return self.model.hidden_states(ids, mask, types)
        return self.model.model(ids)

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32."""
        ids, mask, types, last = self._arrays(batch)
        return self._to_numpy(pool(self._hidden(ids, mask, types), mask, last, self.spec.pooling), ids.size)

    def embed_spans(self, batch: list[SpanTokens]) -> list[np.ndarray]:
        """Late chunking (``gateway.engines.text.late_chunking``): per sequence ``(spans, dim)`` float32 means
        of the token states over each span (right padding: spans keep their positions)."""
        ids, mask, types, _ = self._arrays(batch)
        hidden = self._hidden(ids, mask, types).astype(mx.float32)
        return [
            self._to_numpy(mx.stack([hidden[row, a:b].mean(axis=0) for a, b in tokens.spans]), ids.size)
            for row, tokens in enumerate(batch)
        ]

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.score``: ``(n,)`` float32 raw logits (first label; Qwen3: logit(yes) - logit(no))."""
        ids, mask, types, last = self._arrays(batch)
        if self._encoder:
            scores = self.model.class_logits(ids, mask, types)[:, 0]
        else:
            hidden = self.model.model(ids)[mx.arange(len(batch)), last]
            logits = decoder_lm_logits(self.model, hidden).astype(mx.float32)
            scores = logits[:, self.rerank_prompt.yes_id] - logits[:, self.rerank_prompt.no_id]
        return self._to_numpy(scores, ids.size)
