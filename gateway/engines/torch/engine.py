"""Torch engine on sentence-transformers: ``SentenceTransformer`` bi-encoders, ``CrossEncoder`` rerankers
(and, through ``classifier.py``, sequence classifiers).

The forward pass is the model's own sentence-transformers module pipeline (transformer, pooling,
normalize, dense...), fed with token ids we produce, so the vectors equal ``SentenceTransformer.encode``
and the scores equal ``CrossEncoder.predict(..., activation_fn=Identity())``.
Device preference: CUDA, then MPS, then CPU.

Weights load in the dtype ``ModelConfig.dtype`` resolves to on the device (``precision.resolve_torch_dtype``:
bfloat16 on CPUs with AMX / AVX512-BF16 by default). Only the transformer runs in it: its token states
are cast to float32 before pooling, so pooling, any Dense module after it (kept float32) and the
normalization run in float32; a cross-encoder's classification head is kept float32 too (its input is
cast up), so rerank scores are float32 logits.
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import ModelSpec, Tokens
from gateway.engines.text.late_chunking import SpanTokens
from gateway.engines.text.tokenization import HFTokenization, Qwen3RerankPrompt, is_qwen3_reranker
from gateway.engines.torch.core_sharing import CoreSharing, tiny_pass_tokens
from gateway.engines.torch.packing import PackedBert
from gateway.engines.torch.precision import resolve_torch_dtype
from gateway.engines.torch.scripted import script_transformer


def pick_device(override: str | None = None) -> str:
    """``override`` if given, else ``cuda``, ``mps`` or ``cpu``, whichever is available first."""
    if override:
        return override
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class TorchEngine(CoreSharing, HFTokenization):
    """A sentence-transformers model (bi-encoder or cross-encoder) behind the ``Engine`` interface."""

    def __init__(self, config: ModelConfig, path: str, lanes: int | None = None, *,
                 torchscript: bool = True) -> None:
        """Load the folder ``path`` (local files only). ``lanes``: ``lanes_for``; ``torchscript``: run an
        eligible transformer as a traced graph (``scripted``), checked against eager at load."""
        from sentence_transformers import CrossEncoder, SentenceTransformer

        device = pick_device(config.device)
        heads = config.task != "embed"  # a *ForSequenceClassification head: CrossEncoder loads it as it is
        cls = CrossEncoder if heads else SentenceTransformer
        dtype = resolve_torch_dtype(config.dtype, device)
        self.model = cls(path, device=device, local_files_only=True,
                         model_kwargs={"dtype": getattr(torch, dtype)})
        self.model.eval()
        if heads:
            float32_heads(self.model)
        self.tokenizer = self.model.tokenizer
        model_limit = self.model.max_seq_length or self.tokenizer.model_max_length
        max_tokens = min(config.max_tokens or model_limit, model_limit)
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if is_qwen3_reranker(config.task, self.model[0].config.to_dict()):
            self.rerank_prompt = Qwen3RerankPrompt(self.tokenizer)
        # sentence-transformers' LogitScore reads the last position: causal rerankers need left padding.
        self._pad_left = self.tokenizer.padding_side == "left" or self.rerank_prompt is not None
        self._device = torch.device(device)
        self._cores = torch.get_num_threads()
        self.lanes = lanes_for(device, self._cores, lanes)
        self._tiny_pass_tokens = tiny_pass_tokens(self.model, device)
        # BERT embedders on CPU skip padding when it would waste much of a batch (packing.py)
        self._packed = PackedBert.for_model(self.model, device) if config.task == "embed" else None
        # an eligible transformer runs as one TorchScript graph, without the GIL (scripted.py); a head's
        # scores are the transformer's logits only where nothing follows it in the pipeline
        scripts = torchscript and (not heads or len(self.model) == 1)
        self._scripted = script_transformer(self.model[0], device) if scripts else None
        if scripts and self._packed is not None:
            self._packed.script()
        # a final Normalize module is left to the service, which can then also serve raw vectors
        modules = list(self.model) if config.task == "embed" else []
        ends_normalized = bool(modules) and type(modules[-1]).__name__ == "Normalize"
        self._raw_pipeline = modules[:-1] if ends_normalized else modules
        normalize = ends_normalized if config.normalize is None else config.normalize
        # a reranker's score is its first logit (``score``), named by the first label
        labels = label_names(self.model[0].config)[:None if config.task == "classify" else 1] if heads else ()
        self.spec = ModelSpec(
            name=config.name,
            task=config.task,
            max_tokens=max_tokens,
            dim=0 if heads else int(self.model.get_embedding_dimension()),
            engine="torch",
            device=device,
            pooling=self._pooling_mode(),
            normalize=normalize and config.task == "embed",
            prompts={k: v for k, v in (getattr(self.model, "prompts", None) or {}).items() if v},
            dtype=dtype,
            architecture=getattr(self.model[0].config, "model_type", "") or "",
            parameters=sum(p.numel() for p in self.model.parameters()),
            labels=labels,
        )

    def _pooling_mode(self) -> str:
        for module in self.model:
            mode = getattr(module, "pooling_mode", None)
            if isinstance(mode, str):
                return {"lasttoken": "last"}.get(mode, mode)
        return "none"

    # -- forward passes (runner thread) ---------------------------------------------------------

    def _features(self, batch: list[Tokens]) -> dict[str, torch.Tensor]:
        """Pad a batch on the tokenizer's padding side into input_ids / attention_mask (/ token_type_ids)."""
        width = max(len(t) for t in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        # a classifier's batch may mix single texts (no segment ids: all zero) with pairs
        has_types = any(tokens.type_ids is not None for tokens in batch)
        types = np.zeros((len(batch), width), dtype=np.int64) if has_types else None
        for row, tokens in enumerate(batch):
            span = slice(width - len(tokens), width) if self._pad_left else slice(0, len(tokens))
            ids[row, span], mask[row, span] = tokens.ids, 1
            if types is not None and tokens.type_ids is not None:
                types[row, span] = tokens.type_ids
        features = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            features["token_type_ids"] = types
        return {k: torch.from_numpy(v).to(self._device) for k, v in features.items()}

    @torch.inference_mode()
    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32, the pipeline's output before a final Normalize."""
        if self._packed is not None and self._packed.worth_it(batch):
            return self._packed.embed(batch)
        features = self._transformer(self._features(batch))
        features["token_embeddings"] = features["token_embeddings"].float()  # pool in float32
        for module in self._raw_pipeline[1:]:  # what SentenceTransformer.forward does, minus Normalize
            features = module(features)
        return features["sentence_embedding"].float().cpu().numpy()

    @torch.inference_mode()
    def embed_spans(self, batch: list[SpanTokens]) -> list[np.ndarray]:
        """Late chunking (``text.late_chunking``): per sequence ``(spans, dim)`` float32, the mean
        of the transformer's token states over each span, through the modules after Pooling."""
        pool_at = next(i for i, m in enumerate(self._raw_pipeline) if type(m).__name__ == "Pooling")
        features = self._transformer(self._features(batch))  # traced where it could be, as in ``embed``
        for module in self._raw_pipeline[1:pool_at]:
            features = module(features)
        hidden = features["token_embeddings"].float()
        rows = []
        for row, tokens in enumerate(batch):
            shift = hidden.shape[1] - len(tokens) if self._pad_left else 0
            pooled = torch.stack([hidden[row, shift + a:shift + b].mean(0) for a, b in tokens.spans])
            features = {"sentence_embedding": pooled}
            for module in self._raw_pipeline[pool_at + 1:]:
                features = module(features)
            rows.append(features["sentence_embedding"].float().cpu().numpy())
        return rows

    def _transformer(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``features`` after the pipeline's first module, the transformer: traced where it could be."""
        return (self._scripted or self.model[0])(features)

    def _scores(self, batch: list[Tokens]) -> torch.Tensor:
        """A cross-encoder or classifier pipeline's ``scores``: ``(n, labels)`` logits (a traced head is
        the whole pipeline, see ``__init__``)."""
        return (self._scripted or self.model)(self._features(batch))["scores"]

    @torch.inference_mode()
    def score(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.score``: ``(n,)`` float32 raw logits (first label)."""
        scores = self._scores(batch)
        return scores.float().reshape(len(batch), -1)[:, 0].cpu().numpy()


def label_names(hf_config) -> tuple[str, ...]:
    """The names of a classification head's logits, in logit order (``id2label``; ``LABEL_i`` unnamed)."""
    labels = getattr(hf_config, "id2label", None) or {}
    count = len(labels) or int(getattr(hf_config, "num_labels", 1) or 1)
    return tuple(str(labels.get(i, labels.get(str(i), f"LABEL_{i}"))) for i in range(count))


def float32_heads(cross_encoder) -> None:
    """Make a cross-encoder's scores float32 logits whatever dtype its encoder runs in.

    A ``*ForSequenceClassification`` head (``classifier`` / ``score``) is kept in float32, its input cast
    up. A Qwen3-style reranker reads the logits of a few tokens (yes / no) from the LM head: those
    columns are recomputed in float32 from the final states (the full vocabulary projection stays in the
    model's dtype, and a head tied to the input embeddings is not duplicated).
    """
    model = cross_encoder[0].auto_model
    for name in ("classifier", "score"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module) and any(p.is_floating_point() for p in head.parameters()):
            head.float()
            head.register_forward_pre_hook(_float_inputs)
    lm_head = getattr(model, "lm_head", None)
    names = ("true_token_id", "false_token_id")
    token_ids = sorted({getattr(m, attr) for m in cross_encoder for attr in names
                        if getattr(m, attr, None) is not None})
    if isinstance(lm_head, torch.nn.Linear) and token_ids and lm_head.weight.dtype != torch.float32:
        ids = torch.tensor(token_ids, device=lm_head.weight.device)
        rows = lm_head.weight.detach()[ids].float()  # (k, hidden)
        bias = None if lm_head.bias is None else lm_head.bias.detach()[ids].float()

        def exact_columns(_module, args, out):
            out = out.float()
            out[..., ids] = torch.nn.functional.linear(args[0].float(), rows, bias)
            return out

        lm_head.register_forward_hook(exact_columns)


def _float_inputs(_module, args):
    return tuple(a.float() if torch.is_floating_point(a) else a for a in args)


def lanes_for(device: str, cores: int, requested: int | None) -> int:
    """How many forward passes run side by side: ``requested`` (or 2) on a CPU with 2+ threads, else 1.

    On CPU, MiniLM batches of 16 short texts ran 1.5-1.7x faster as two 1-thread passes side by side than
    as one 2-thread pass (torch's intra-op threads split small matrices poorly), and 1.3x on batches of 64
    (measured on a 2-core x86 CPU; ``gateway bench`` shows it end to end). A GPU keeps one pass at a time.
    """
    if device != "cpu" or cores < 2:
        return 1
    return min(requested or 2, cores)


def attach_st_model(engine: HFTokenization, cls: type, config: ModelConfig, path: str,
                    lanes: int | None) -> tuple[str, str]:
    """Load the folder ``path`` with the sentence-transformers class ``cls`` (``SparseEncoder``,
    ``MultiVectorEncoder``) in eval mode, in ``config.dtype`` on the preferred device, and give ``engine``
    what ``HFTokenization`` and the runner read: ``model``, ``tokenizer``, ``_pad_id``, ``_device``,
    ``_cores``, ``_tiny_pass_tokens`` and ``lanes`` (``lanes_for``). Reads only local files.

    Returns:
        the device (``cpu``, ``cuda``...) and the weights' dtype name (``float32``, ``bfloat16``...).
    """
    device = pick_device(config.device)
    dtype = resolve_torch_dtype(config.dtype, device)
    engine.model = cls(path, device=device, local_files_only=True,
                       model_kwargs={"dtype": getattr(torch, dtype)})
    engine.model.eval()
    engine.tokenizer = engine.model.tokenizer
    engine._pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    engine._device = torch.device(device)
    engine._cores = torch.get_num_threads()
    engine.lanes = lanes_for(device, engine._cores, lanes)
    engine._tiny_pass_tokens = tiny_pass_tokens(engine.model, device)
    return device, dtype
