"""The engine interface: what every inference backend (torch, MLX) implements.

An engine owns one loaded model. It tokenizes inputs (one call at a time, under the model's tokenizer
lock) and runs forward passes on already-tokenized batches (called only from the model's runner
threads), returning numpy arrays. Engines never import Litestar or protocol modules.

Engines are looked up by name in ``ENGINES``; ``load_engine`` picks one for a model config.
"""

from __future__ import annotations

import importlib
import logging
import platform
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from gateway.errors import UnprocessableInput

if TYPE_CHECKING:
    from gateway.config import ModelConfig
    from gateway.inputs import InputItem

log = logging.getLogger(__name__)

Task = Literal["embed", "rerank", "classify"]
# What a forward pass can produce. An engine declares the outputs its model defines (``ModelSpec.outputs``);
# the service asks for one, and each dialect's route converts it to its wire shape:
#   dense: (n, dim) float32 pooled vectors;  rerank: (n,) float32 pair scores (cross-encoder logits);
#   sparse: per input, ascending vocabulary indices and their weights (SPLADE, BGE-M3's lexical head);
#   multi_vector: per input, (tokens, dim) float32 token vectors (ColBERT, late interaction);
#   classify: (n, labels) float32 class logits (sequence classifiers).
Output = Literal["dense", "sparse", "multi_vector", "classify", "rerank"]


@dataclass(slots=True)
class Tokens:
    """One prepared input: model token ids (special tokens included) and, for inputs holding images, the
    engine's preprocessed image arrays, ready for a forward pass.

    Attributes:
        ids: token ids, at most the model's ``max_tokens`` long (for a vision-language model, the ids of
            the whole prompt, image placeholder tokens included; for a CLIP/SigLIP image, empty).
        type_ids: segment ids for pair inputs of BERT-style cross-encoders, else None.
        truncated: whether the input was cut to fit ``max_tokens``.
        images: engine-specific preprocessed image data of this input (e.g. ``(3, H, W)`` float32 pixel
            arrays, or a processor's patch arrays and grid sizes), None for text-only inputs. Prepared
            by ``Engine.encode_items`` on the tokenizer thread; only the engine reads it.
        image_tokens: what the images cost a forward pass, in tokens (patches after merging, for a
            vision-language model; the vision tower's sequence length for CLIP/SigLIP) when they are not
            already counted in ``ids``. It is counted in ``len()``, so the runner's padded-token budget
            and the request's token limits include image cost.
        image_ids: how many of ``ids`` are image placeholders (a vision-language model's ``<|image_pad|>``,
            one per merged patch): part of the images' cost, not text. The images cost
            ``image_tokens + image_ids`` tokens in all, the text ``len(ids) - image_ids``.
        task: the side of an asymmetric model this input was tokenized for (``query`` / ``document``:
            an inference-free SPLADE ``Router``, a ColBERT query), None for symmetric models. Set by the
            engine's ``tokenize(..., task=...)``; the forward pass routes on it.
    """

    ids: list[int]
    type_ids: list[int] | None = None
    truncated: bool = False
    images: Any = None
    image_tokens: int = 0
    image_ids: int = 0
    task: str | None = None

    def __len__(self) -> int:
        return len(self.ids) + self.image_tokens


@dataclass(slots=True)
class ModelSpec:
    """What the server needs to know about a loaded model.

    Attributes:
        name: served model name.
        task: ``embed`` (bi-encoder: embeddings, and rerank by cosine), ``rerank`` (cross-encoder) or
            ``classify`` (a sequence classifier with several labels).
        max_tokens: longest input in model tokens (special tokens included).
        dim: embedding size (0 for cross-encoders).
        engine: engine name (``torch`` or ``mlx``).
        device: where the forward pass runs (``cpu``, ``cuda``, ``mps``, ``gpu``).
        pooling: ``mean`` | ``cls`` | ``last`` (embedders) or ``none``.
        normalize: whether the model's output is L2-normalized (its pipeline ends in a Normalize
            module, or the config says so); engines return the vectors before that step and the
            service applies it, so a request may also ask for the raw vectors (TEI ``normalize: false``).
        prompts: named prompts the model defines (e.g. ``{"query": "Instruct: ...\\nQuery: "}``).
        dtype: dtype of the weights the forward pass runs in (``float32``, ``float16``, ``bfloat16``...).
        quantization: MLX weight quantization (``q8``, ``q4``...), None when the weights are not quantized.
        quantization_reason: why the MLX engine chose ``quantization`` (``mlx.quantize.QuantizeChoice``),
            None on engines that do not quantize.
        modalities: what one input may hold: ``("text",)``, or ``("text", "image")`` for CLIP/SigLIP and
            vision-language embedders.
        fuses: whether one input may hold several parts (text and images together, or several images)
            embedded into one vector (vision-language models); CLIP/SigLIP embed one part per input.
        architecture: the transformers ``model_type`` (``bert``, ``qwen3``...), "" when unknown.
        parameters: number of weight values the engine holds (for model listings), 0 when unknown.
        instructions: whether ``prompts`` (and ``query_prompt`` / ``document_prompt``) are instructions
            the model's prompt format places itself (a vision-language embedder's system message)
            rather than text prefixes: the service then prepares every input, text-only included,
            with ``encode_items(items, prompt=...)`` instead of prepending the prompt to the text.
        outputs: what the model's forward pass produces (``Output``); by default ``("dense",)`` for an
            embedder, ``("rerank",)`` for a cross-encoder and ``("classify",)`` for a classifier.
        labels: the names of the class logits, in logit order (the folder's ``id2label``), for classifiers
            and cross-encoders (TEI ``/predict`` names a one-logit reranker's score ``LABEL_0``); () else.
    """

    name: str
    task: Task
    max_tokens: int
    dim: int
    engine: str
    device: str
    pooling: str = "none"
    normalize: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    dtype: str = "float32"
    quantization: str | None = None
    quantization_reason: str | None = None
    modalities: tuple[str, ...] = ("text",)
    fuses: bool = False
    architecture: str = ""
    parameters: int = 0
    instructions: bool = False
    outputs: tuple[Output, ...] = ()
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.outputs:
            self.outputs = {"rerank": ("rerank",), "classify": ("classify",)}.get(self.task, ("dense",))


@dataclass(slots=True)
class SparseVector:
    """One input's sparse embedding (``sparse`` output): its non-zero vocabulary terms.

    Attributes:
        indices: ``(k,)`` int32 vocabulary ids, ascending.
        values: ``(k,)`` float32 weights, all non-zero, ``values[i]`` belonging to ``indices[i]``.
    """

    indices: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


# What one input's row of each output is (the runner assembles them per request):
#   dense: (dim,) float32 | rerank: () float32 | classify: (labels,) float32  -> stacked into one array
#   sparse: SparseVector | multi_vector: (tokens, dim) float32             -> ragged: a list per request
RAGGED_OUTPUTS: frozenset[str] = frozenset({"sparse", "multi_vector"})


@dataclass(slots=True)
class TokenSpan:
    """One token of a tokenized text, for tokenizer inspection routes (TEI ``/tokenize``).

    Attributes:
        id: token id.
        text: the covered slice of the input, or the token string for a special token.
        special: whether the tokenizer added it (``[CLS]``, ``</s>``...), rather than read it from the text.
        start / stop: character offsets of ``text`` in the input (None for special tokens).
    """

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class InputTooLong(UnprocessableInput):
    """An input exceeds ``max_tokens`` and the model's truncation policy is ``reject``.

    Attributes:
        index: position of the offending input in the list given to ``tokenize``.
        length: its length in model tokens; a lower bound when ``at_least`` (a long input is tokenized
            only through a window of its characters, ``tokenization.encode``).
    """

    def __init__(self, index: int, length: int, limit: int, at_least: bool = False) -> None:
        super().__init__(f"input {index} has {'at least ' if at_least else ''}{length} tokens, more than "
                         f"the model's limit of {limit}")
        self.index, self.length, self.limit, self.at_least = index, length, limit, at_least

    @property
    def length_text(self) -> str:
        """``length`` for messages: ``"300"``, or ``"at least 300"`` when it is a lower bound."""
        return f"at least {self.length}" if self.at_least else str(self.length)


class Engine(Protocol):
    """An inference backend for one model (see module docstring for the threading contract).

    Optional: ``tokenize_joined`` and ``embed_spans`` for late chunking (``engines.text.late_chunking``).
    """

    spec: ModelSpec

    def tokenize(
        self,
        texts: list[str],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
    ) -> list[Tokens]:
        """Tokenize single texts, truncated to ``spec.max_tokens``.

        Args:
            max_tokens: a lower limit than ``spec.max_tokens`` for this call (special tokens included;
                at least one text token is always kept).
            truncation_side: ``right`` cuts the end of a long text, ``left`` its start (special tokens stay).

        Raises:
            InputTooLong: a text is too long and ``truncate`` is False.
        """
        ...

    def tokens_from_ids(
        self,
        ids: list[list[int]],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
    ) -> list[Tokens]:
        """Already-tokenized inputs (the model's own ids, special tokens included, as TEI's ``/tokenize``
        gives them), used as they are except for truncation like ``tokenize``'s.

        Raises:
            UnprocessableInput: an id is outside the vocabulary.
            InputTooLong: an input is too long and ``truncate`` is False.
        """
        ...

    def tokenize_pairs(self, pairs: list[tuple[str, str]], *, truncate: bool = True) -> list[Tokens]:
        """Tokenize (query, document) pairs for a cross-encoder, truncated to ``spec.max_tokens``.

        Raises:
            InputTooLong: a pair is too long and ``truncate`` is False.
        """
        ...

    def split_text(self, text: str, max_tokens: int) -> list[str]:
        """Split a text into consecutive chunks of at most ``max_tokens`` model tokens (no specials)."""
        ...

    def tokenize_spans(self, texts: list[str], *, add_special_tokens: bool = True) -> list[list[TokenSpan]]:
        """Every token of each text with its character offsets, untruncated (for inspection routes)."""
        ...

    def decode(self, ids: list[list[int]], *, skip_special_tokens: bool = True) -> list[str]:
        """Token ids back to text, one string per id list.

        Raises:
            UnprocessableInput: an id is outside the vocabulary.
        """
        ...

    def encode_items(
        self,
        items: list[InputItem],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
        prompt: str | None = None,
    ) -> list[Tokens]:
        """Prepare inputs that hold images (decoded, in ``ImagePart.image``) for ``embed``: tokenize their
        text, preprocess their images into ``Tokens.images`` and set ``Tokens.image_tokens``. Only engines
        whose ``spec.modalities`` include ``image`` implement it; text-only inputs keep using ``tokenize``.
        Runs on the tokenizer thread, under the tokenizer lock.

        Args:
            prompt: the instruction or prefix of the request's input type (query / document), applied
                the way the model's card does; None for the model's default.

        Raises:
            InputTooLong: the text of an input is too long and ``truncate`` is False.
            UnprocessableInput: an input the model cannot embed (e.g. several parts for a model that does
                not fuse, or an image outside the processor's limits), with a message naming the reason.
                Any other exception is a server bug (500), never a client error.
        """
        ...

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """Embed a batch. Returns ``(n, dim)`` float32, pooled as the model defines, before any final
        L2 normalization (``spec.normalize`` says whether the model applies one). A batch may mix text
        and image inputs: an engine whose library needs one modality per call groups the batch itself and
        returns the rows in batch order."""
        ...

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Score tokenized pairs with a cross-encoder. Returns ``(n,)`` float32 raw logits."""
        ...

    def forward(self, batch: list[Tokens], output: Output) -> list:
        """Run a batch for one of the outputs in ``spec.outputs`` other than ``dense`` / ``rerank`` (those
        keep ``embed`` / ``score``). The interface grows by outputs, not by routes: each dialect's route
        converts the same rows to its wire shape. Optional: only engines whose ``spec.outputs`` name
        ``sparse``, ``multi_vector`` or ``classify`` implement it. Rows are in batch order, one per input:

        - ``sparse``: a ``SparseVector`` (ascending int32 indices, their non-zero float32 values);
        - ``multi_vector``: ``(tokens, dim)`` float32, one vector per token the model keeps, as the
          model's pipeline ends (ColBERT's are L2-normalized; ``spec.normalize`` is False);
        - ``classify``: ``(labels,)`` float32 raw class logits in ``spec.labels`` order (no softmax),
          stacked into ``(n, labels)`` for the batch.

        Raises:
            ValueError: ``output`` is not one the model produces (a server bug: the service checks it).
        """
        ...


# engine name -> "module:function" that loads it: imported lazily so torch-only installs never import mlx.
ENGINES: dict[str, str] = {
    "torch": "gateway.engines.torch.load:load_torch_engine",
    "mlx": "gateway.engines.mlx.load:load_mlx_engine",
}


def on_apple_silicon() -> bool:
    """True on macOS arm64, where MLX runs on the GPU."""
    return sys.platform == "darwin" and platform.machine() == "arm64"


def resolve_engine_name(requested: str, hf_config: dict | None = None) -> str:
    """Turn ``auto|torch|mlx`` into a concrete engine name: ``auto`` is MLX on Apple Silicon, else torch.

    Args:
        hf_config: the model folder's ``config.json``, once known: ``auto`` then picks torch for an
            architecture MLX has no implementation of (CLIP: ``dual_encoders.mlx_refusal``).
    """
    if requested != "auto":
        if requested not in ENGINES:
            raise ValueError(f"unknown engine {requested!r}; choose one of auto, {', '.join(ENGINES)}")
        return requested
    if on_apple_silicon() and importlib.util.find_spec("mlx") is not None:
        from gateway.engines.vision.dual_encoders import mlx_refusal

        return "torch" if hf_config and mlx_refusal(hf_config) else "mlx"
    return "torch"


def load_engine(config: ModelConfig, path: str, **options: object) -> Engine:
    """Load the model at local folder ``path`` with the engine ``config.engine`` resolves to.

    Args:
        options: engine-specific settings passed to the loader (MLX: ``memory_fraction``); loaders
            ignore the ones they do not use.

    The folder is recognised first (``detect.detect_model``, from its configuration files alone): one whose
    outputs this server does not serve with ``config.task`` (a SPLADE or ColBERT folder, a classifier, a
    cross-encoder configured as an embedder...) is refused before any weight is read.

    Raises:
        ModelRefused (a ValueError): the folder's outputs are not served with ``config.task``; the message
            names the model, what was detected and what is supported.
        ValueError: unknown engine name.
        ImportError: the engine's libraries are not installed (e.g. mlx without the ``[mlx]`` extra).
        ValueError: the config's ``modalities`` ask for more than the model takes, or the engine cannot
            serve the architecture (CLIP on MLX).
        ModelRefused: a sparse or multi-vector folder configured for the MLX engine (the message names torch).
    """
    from gateway.engines.detect import TORCH_ONLY_KINDS, ModelRefused, check_servable, detect_model
    from gateway.engines.vision.dual_encoders import apply_modalities

    detection = detect_model(path)
    check_servable(config.name, config.task, detection)
    engine_name = resolve_engine_name(config.engine)
    if detection.note and not (detection.kind == "bge_m3" and engine_name == "torch"):  # torch serves all
        log.warning("model %s: detected %s; %s", config.name, detection.what, detection.note)
    if engine_name == "mlx" and detection.kind in TORCH_ONLY_KINDS:
        raise ModelRefused(f"model {config.name!r}: detected {detection.what}; the MLX engine does not "
                           f"serve {detection.kind.replace('_', '-')} output (mlx-embeddings has no such "
                           "head): set engine = 'torch' for this model")
    module_name, func_name = ENGINES[engine_name].split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    engine = loader(config, path, **options)
    apply_modalities(engine.spec, config.modalities, path)  # the config may narrow what was detected
    return engine
