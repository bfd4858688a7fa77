"""What a model folder is, read from its files alone (no torch, no weights), and whether the server serves it.

A folder whose outputs are not what the configured task serves must be refused at start-up: loaded
anyway, sentence-transformers would *convert* it (a SPLADE ``SparseEncoder`` or a ColBERT
``MultiVectorEncoder`` becomes a mean-pooled dense model, a dense bi-encoder becomes a ``CrossEncoder``
with a random head) and the server would answer with plausible but wrong numbers.

The folder is recognised from, in this order:

- ``config_sentence_transformers.json``'s ``model_type`` (``SentenceTransformer``, ``SparseEncoder``,
  ``CrossEncoder``, ``MultiVectorEncoder``, PyLate's ``ColBERT``) and the module classes of ``modules.json``
  (and of a ``Router``'s ``router_config.json``): ``SpladePooling``, ``SparseStaticEmbedding``,
  ``SparseAutoEncoder``, ``MLMTransformer`` are sparse; ``MultiVectorMask``, token pooling and any
  ``pylate.*`` module are multi-vector; ``LogitScore`` is a decoder reranker;
- ``config.json``: a CLIP / SigLIP ``model_type`` (dual encoder), a Qwen2-VL / Qwen3-VL backbone
  (vision-language embedder), ``HF_ColBERT`` (Stanford ColBERT), ``*ForSequenceClassification`` (a one-logit
  cross-encoder, or a classifier when it has several outputs), ``*ForCausalLM`` without ``modules.json``
  (a decoder embedder; for ``Qwen3ForCausalLM`` also a Qwen3-Reranker: the configured task decides);
- FlagEmbedding's BGE-M3 layout: ``sparse_linear.pt`` / ``colbert_linear.pt`` beside a dense pipeline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.engines.vision.dual_encoders import DUAL_ENCODER_TYPES
from gateway.engines.vision.vlm_formats import is_vision_language

Kind = Literal[
    "dense",             # sentence vectors: a sentence-transformers pipeline, or a plain encoder
    "bge_m3",            # BGE-M3: dense pipeline, and (torch) its sparse and ColBERT heads beside it
    "dual_encoder",      # CLIP / SigLIP text and image towers
    "vision_language",   # Qwen2-VL / Qwen3-VL embedders
    "cross_encoder",     # *ForSequenceClassification with one logit
    "decoder_reranker",  # a decoder reranker (yes / no logits) saved as a sentence-transformers CrossEncoder
    "decoder",           # a causal LM without sentence-transformers files: an embedder, or (Qwen3) a reranker
    "sparse",            # SPLADE and friends: one weight per vocabulary term
    "multi_vector",      # ColBERT / PyLate: one vector per token
    "classifier",        # *ForSequenceClassification with several outputs
    "unknown",           # nothing this server recognises
]

# what each kind is served with (task -> the outputs it gives); kinds absent here are refused
SERVED_TASKS: dict[str, dict[str, str]] = {
    "dense": {"embed": "dense"},
    "bge_m3": {"embed": "dense"},
    "dual_encoder": {"embed": "dense"},
    "vision_language": {"embed": "dense"},
    "cross_encoder": {"rerank": "rerank"},
    "decoder_reranker": {"rerank": "rerank"},
    "decoder": {"embed": "dense"},
    "sparse": {"embed": "sparse"},
    "multi_vector": {"embed": "multi_vector"},
    "classifier": {"classify": "classify"},
}
# kinds only the torch engine serves (mlx-embeddings has no SPLADE or ColBERT heads)
TORCH_ONLY_KINDS = frozenset({"sparse", "multi_vector"})
SUPPORTED = ("this server serves dense embedders, CLIP/SigLIP and vision-language embedders, SPLADE sparse "
             "encoders, ColBERT multi-vector encoders (task = 'embed'), cross-encoder or Qwen3-style "
             "rerankers (task = 'rerank') and sequence classifiers (task = 'classify')")
NOT_YET: dict[str, str] = {
}

SPARSE_MODULES = {"SpladePooling", "SparseStaticEmbedding", "SparseAutoEncoder", "MLMTransformer"}
MULTI_VECTOR_MODULES = {"MultiVectorMask", "HierarchicalTokenPooling", "LambdaTokenPooling"}
BGE_M3_HEADS = ("sparse_linear.pt", "colbert_linear.pt")
_GENERIC_LABEL = re.compile(r"LABEL_\d+")


class ModelRefused(ValueError):
    """A model folder this server will not serve with the configured task; the message names the model,
    what was detected, and what is supported."""


@dataclass(frozen=True, slots=True)
class Detection:
    """What a model folder is.

    Attributes:
        kind: see ``Kind``.
        what: a phrase for messages, e.g. ``"a SPLADE sparse encoder (SparseEncoder: Transformer +
            SpladePooling)"``.
        note: something served differently from what the folder holds (BGE-M3: the MLX engine serves only
            its dense vectors), for the load log; None otherwise.
        served: the tasks this folder may be configured with, each to the output it gives (``dense``,
            ``sparse``, ``multi_vector``, ``rerank`` or ``classify``); None: the kind's (``SERVED_TASKS``).
        default_task: the task a model configured without one is served with, when it is not ``embed``
            (a classifier whose labels have names: ``classify``); None: ``embed``.
    """

    kind: Kind
    what: str
    note: str | None = None
    served: dict[str, str] | None = None
    default_task: str | None = None

    @property
    def tasks(self) -> dict[str, str]:
        """The tasks this folder is served with, each to its output (``dense``, ``rerank``, ``classify``);
        {} if none."""
        return SERVED_TASKS.get(self.kind, {}) if self.served is None else self.served


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _module_classes(folder: Path, modules: list) -> list[str]:
    """Class names of the pipeline's modules, those inside a ``Router`` / ``Asym`` included, in order;
    ``pylate.*`` modules keep their full path (they mark a PyLate model)."""
    names: list[str] = []
    for module in modules:
        ref = str(module.get("type", "")) if isinstance(module, dict) else ""
        name = ref if ref.startswith("pylate.") else ref.rsplit(".", 1)[-1]
        names.append(name)
        if name in ("Router", "Asym"):
            inner = folder / str(module.get("path", ""))
            routed = _read_json(inner / "router_config.json") or _read_json(inner / "config.json") or {}
            types = routed.get("types", {}) if isinstance(routed, dict) else {}
            names += [str(t).rsplit(".", 1)[-1] for t in (types.values() if isinstance(types, dict) else [])]
    return names


def _label_count(hf_config: dict) -> int:
    """Outputs of a ``*ForSequenceClassification`` head, as transformers builds it (2 when unset)."""
    labels = hf_config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    return int(hf_config.get("num_labels") or 2)


def _classifier_or_cross_encoder(hf_config: dict, architecture: str) -> Detection:
    labels = hf_config.get("id2label") or {}
    count = _label_count(hf_config)
    if count == 1:
        return Detection("cross_encoder", f"a cross-encoder ({architecture}, one logit)")
    names = [str(labels[key]) for key in sorted(labels, key=lambda k: int(k))] if labels else []
    named = bool(names) and not all(_GENERIC_LABEL.fullmatch(name) for name in names)
    shown = ", ".join(names) if names else "labels unnamed"
    # named labels say what the logits mean: served as a classifier unless the config says otherwise;
    # LABEL_0, LABEL_1... (an unnamed head) only when task = "classify" says so
    return Detection("classifier", f"a sequence classifier ({architecture}) with {count} "
                                   f"{'named labels' if named else 'outputs'} ({shown}), not a one-logit "
                                   "cross-encoder", default_task="classify" if named else None)


def detect_model(path: str | Path) -> Detection:
    """Recognise the model folder at ``path`` from its configuration files (see the module docstring).

    Returns:
        the folder's ``Detection``; ``unknown`` when it holds neither ``modules.json`` nor ``config.json``.
    """
    folder = Path(path)
    modules = _read_json(folder / "modules.json")
    modules = modules if isinstance(modules, list) else None
    st_config = _read_json(folder / "config_sentence_transformers.json")
    st_config = st_config if isinstance(st_config, dict) else {}
    hf_config = _read_json(folder / "config.json")
    hf_config = hf_config if isinstance(hf_config, dict) else {}
    st_type = st_config.get("model_type")
    classes = _module_classes(folder, modules or [])
    pipeline = " + ".join(name.rsplit(".", 1)[-1] for name in classes)
    architectures = [str(a) for a in hf_config.get("architectures") or []]
    architecture = architectures[0] if architectures else str(hf_config.get("model_type", "?"))

    pylate = any(name.startswith("pylate.") for name in classes) or st_type == "ColBERT"
    if st_type == "MultiVectorEncoder" or pylate or MULTI_VECTOR_MODULES & set(classes) \
            or st_config.get("similarity_fn_name") == "MaxSim":
        family = "PyLate ColBERT model" if pylate else "multi-vector (ColBERT) encoder"
        return Detection("multi_vector", f"a {family} (MultiVectorEncoder: {pipeline or architecture})")
    if "HF_ColBERT" in architectures:
        # its projection lives in the checkpoint's own weights, which sentence-transformers' loader does not
        # read as such: refused rather than served with a random projection
        return Detection("multi_vector", "a Stanford ColBERT checkpoint (HF_ColBERT), not served as it is: "
                                         "save it as a sentence-transformers MultiVectorEncoder or PyLate "
                                         "folder first", served={})
    if st_type == "SparseEncoder" or SPARSE_MODULES & set(classes):
        if "SparseStaticEmbedding" in classes:
            family = "an inference-free SPLADE sparse encoder"
        elif "SparseAutoEncoder" in classes:
            family = "a CSR sparse encoder"
        else:
            family = "a SPLADE sparse encoder"
        return Detection("sparse", f"{family} (SparseEncoder: {pipeline or architecture})")

    model_type = hf_config.get("model_type")
    if model_type in DUAL_ENCODER_TYPES:
        return Detection("dual_encoder", f"a {DUAL_ENCODER_TYPES[model_type]} dual encoder")
    if is_vision_language(hf_config):
        return Detection("vision_language", f"a vision-language embedder ({architecture})")

    classifier_heads = [a for a in architectures if a.endswith("ForSequenceClassification")]
    if st_type == "CrossEncoder" or (modules is None and classifier_heads):
        if "LogitScore" in classes or any(a.endswith("ForCausalLM") for a in architectures):
            return Detection("decoder_reranker", f"a decoder reranker ({architecture}, yes/no logits)")
        head = classifier_heads[0] if classifier_heads else architecture
        return _classifier_or_cross_encoder(hf_config, head)

    heads = [name for name in BGE_M3_HEADS if (folder / name).is_file()]
    if heads and modules is not None:
        return Detection("bge_m3", f"a BGE-M3 model (dense pipeline {pipeline} with {', '.join(heads)})",
                         note=f"the torch engine serves its dense vectors and its heads "
                              f"({', '.join(heads)}); the MLX engine serves only the dense vectors")
    if modules is not None:
        if classifier_heads and _label_count(hf_config) == 1:
            # a one-logit cross-encoder checkpoint that also ships a dense pipeline: the task picks which
            # (sentence-transformers' CrossEncoder loads the checkpoint's own head)
            return Detection("dense", f"a dense pipeline ({pipeline}) over a one-logit cross-encoder "
                                      f"checkpoint ({classifier_heads[0]})",
                             served={"embed": "dense", "rerank": "rerank"})
        return Detection("dense", f"a dense embedder (SentenceTransformer: {pipeline})")
    if heads:
        return Detection("unknown", f"FlagEmbedding heads ({', '.join(heads)}) without modules.json: the "
                                    "pooling of BGE-M3's dense vectors is not declared")
    if not hf_config:
        return Detection("unknown", "a folder with neither modules.json nor config.json (no model)")
    if any(a.endswith("ForCausalLM") for a in architectures):
        # Qwen3-Embedding and Qwen3-Reranker folders both say Qwen3ForCausalLM (MLX conversions often drop
        # modules.json): the configured task tells them apart
        if "Qwen3ForCausalLM" in architectures:
            both = {"embed": "dense", "rerank": "rerank"}
            return Detection("decoder", "a Qwen3 causal LM without modules.json (a Qwen3-Embedding or "
                                        "Qwen3-Reranker folder)", served=both)
        return Detection("decoder", f"a causal LM ({architecture}) without modules.json")
    return Detection("dense", f"a plain transformers encoder ({architecture}; no modules.json: mean pooling, "
                              "as sentence-transformers does)")


def default_task(path: str | Path) -> str | None:
    """The task a model folder is served with when its config names none, if not ``embed``: ``classify``
    for a sequence classifier with named labels (see ``Detection.default_task``), else None."""
    return detect_model(path).default_task


def check_servable(name: str, task: str, detection: Detection) -> str:
    """The output model ``name`` gives when served with ``task``.

    Returns:
        ``dense``, ``sparse``, ``multi_vector``, ``rerank`` or ``classify``.

    Raises:
        ModelRefused: the folder's outputs are not ones this server serves, or not with ``task``; the
            message names the model, what was detected and what is supported.
    """
    tasks = detection.tasks
    if task in tasks:
        return tasks[task]
    head = f"model {name!r}: detected {detection.what}"
    if detection.kind in NOT_YET:
        raise ModelRefused(f"{head}; {SUPPORTED}; {NOT_YET[detection.kind]}")
    if tasks:
        other = next(iter(tasks))
        why = (" (an embedder also reranks by cosine with task = 'embed')" if other == "embed" else "")
        raise ModelRefused(f"{head}, which is served with task = '{other}', not task = '{task}'{why}")
    raise ModelRefused(f"{head}; {SUPPORTED}")
