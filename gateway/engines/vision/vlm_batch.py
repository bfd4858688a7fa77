"""Batches of vision-language inputs: what one input's images hold, and how a batch is laid out for a pass.

Both engines right-pad the ids (exact for these causal decoders: no real token attends to a pad after
it), concatenate the batch's image patches in batch order (each image's features land on its own
``<|image_pad|>`` placeholders, in order) and pool the state of each input's last token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.engines import Tokens


@dataclass(slots=True)
class VlmImages:
    """The preprocessed images of one input (``Tokens.images``).

    Attributes:
        pixel_values: ``(patches, channels x temporal x patch x patch)`` patch rows of every image, in the
            engine's storage type and dtype (the vision tower's dtype: no precision is lost by storing it).
        grid_thw: ``(n_images, 3)`` int64 patch grid (temporal, height, width) of each image.
    """

    pixel_values: Any
    grid_thw: np.ndarray


def collate(batch: list[Tokens], pad_id: int) -> tuple[np.ndarray, np.ndarray, list, np.ndarray | None]:
    """Right-pad a batch for a forward pass (right padding is exact: the attention is causal).

    Returns:
        ids ``(n, L)`` int64, mask ``(n, L)`` int64, the inputs' stored pixel values in batch order (one
        entry per input with images) and their grids ``(images, 3)`` int64 (None without images).
    """
    width = max(len(t.ids) for t in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, tokens in enumerate(batch):
        ids[row, : len(tokens.ids)], mask[row, : len(tokens.ids)] = tokens.ids, 1
    with_images = [t.images for t in batch if t.images is not None]
    grids = np.concatenate([images.grid_thw for images in with_images]) if with_images else None
    return ids, mask, [images.pixel_values for images in with_images], grids


def last_positions(batch: list[Tokens]) -> np.ndarray:
    """``(n,)`` int64 index of each input's last token: the state these models pool."""
    return np.array([len(t.ids) - 1 for t in batch], dtype=np.int64)
