"""Read what a model folder says about its sentence-transformers pipeline, without importing torch.

The MLX engine runs the transformer itself, so it must reproduce the rest of the pipeline from the
folder's own files: ``modules.json`` (which modules), ``1_Pooling/config.json`` (how to pool),
a ``Normalize`` module, ``config_sentence_transformers.json`` (prompts) and
``sentence_bert_config.json`` (length limit). Both the legacy (``pooling_mode_mean_tokens: true``)
and the sentence-transformers v5+ (``pooling_mode: "mean"``) pooling formats are understood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# sentence-transformers pooling mode -> ModelSpec pooling name (the modes the MLX engine implements)
POOLING_MODES = {"mean": "mean", "cls": "cls", "lasttoken": "last"}
_LEGACY_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
}
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


@dataclass(slots=True)
class FolderInfo:
    """A model folder's configuration as the MLX engine needs it.

    Attributes:
        hf_config: the transformers ``config.json``.
        pooling: ``mean`` | ``cls`` | ``last`` from the Pooling module, None without modules.json.
        normalize: whether the pipeline has a Normalize module, None without modules.json.
        prompts: non-empty named prompts from ``config_sentence_transformers.json``.
        max_seq_length: the pipeline's explicit length limit, if it sets one.
    """

    hf_config: dict
    pooling: str | None = None
    normalize: bool | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    max_seq_length: int | None = None


def _read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def pooling_mode(pooling_config: dict) -> str:
    """Map a ``1_Pooling/config.json`` dict to ``mean`` | ``cls`` | ``last``.

    Raises:
        ValueError: the mode is one the MLX engine does not implement (max, weighted mean...).
    """
    mode = pooling_config.get("pooling_mode")
    if mode is None:
        modes = [name for key, name in _LEGACY_POOLING_KEYS.items() if pooling_config.get(key)]
        mode = modes[0] if len(modes) == 1 else modes
    if not isinstance(mode, str) or mode not in POOLING_MODES:
        raise ValueError(f"pooling mode {mode!r} is not supported by the MLX engine; use engine = 'torch'")
    return POOLING_MODES[mode]


def read_folder(path: str | Path, *, pipeline: bool = True) -> FolderInfo:
    """Read ``config.json`` and, when ``pipeline`` (embedders), the sentence-transformers files.

    Raises:
        FileNotFoundError: no ``config.json`` in ``path``.
        ValueError: the pipeline has a module (Dense, ...) or pooling the MLX engine cannot run.
    """
    folder = Path(path)
    hf_config = _read_json(folder / "config.json")
    if hf_config is None:
        raise FileNotFoundError(f"no config.json in {folder}")
    bert_config = _read_json(folder / "sentence_bert_config.json") or {}
    info = FolderInfo(hf_config=hf_config, max_seq_length=bert_config.get("max_seq_length"))
    modules = _read_json(folder / "modules.json") if pipeline else None
    if not modules:
        return info
    info.normalize = False
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_MODULES:
            raise ValueError(f"module {module['type']} is not supported by MLX; use engine = 'torch'")
        if kind == "Pooling":
            info.pooling = pooling_mode(_read_json(folder / module["path"] / "config.json") or {})
        info.normalize = info.normalize or kind == "Normalize"
    st_config = _read_json(folder / "config_sentence_transformers.json") or {}
    info.prompts = {name: text for name, text in (st_config.get("prompts") or {}).items() if text}
    return info
