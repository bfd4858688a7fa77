"""What leaves the event loop, decided by size: small work runs inline, large work in a worker thread.

A thread hop costs about 0.1 ms, so the one-text requests of the hot path stay inline; work that grows
with the request (the JSON depth scan of a body, decoding token ids, encoding a response) moves to a
thread once it would take a few times that inline: each threshold below is where the inline cost reaches
~0.3-0.4 ms on one core (the per-unit costs beside them).

Off the loop is not enough alone: one C call holds the GIL, so the offloaded work is also written as many
short calls (per-row encoders, whole-buffer passes of a few ms), never one call over a whole 8 MiB body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")

# request bodies: depth scan and input parsing, ~5 ns a byte (0.3 ms here). It also bounds the token ids
# to decode: each takes 2 bytes of JSON at least, so up to 32,768 ids (~20 ns each) are decoded inline.
BIG_BODY_BYTES = 64 * 1024
BIG_RESPONSE_VALUES = 16_384  # rows x dim of a response, ~25 ns a value as JSON (0.4 ms here): 42 rows of 384


async def offload(condition: bool, func: Callable[..., T], *args) -> T:
    """Run ``func(*args)`` in a worker thread when ``condition`` (big work), else inline."""
    if condition:
        return await asyncio.to_thread(func, *args)
    return func(*args)


def big_body(body: bytes) -> bool:
    """A request body worth scanning and parsing off the event loop (over ``BIG_BODY_BYTES``)."""
    return len(body) > BIG_BODY_BYTES


def big_response(vectors: np.ndarray) -> bool:
    """A response of ``vectors`` ``(n, dim)`` worth encoding off the event loop (over ``BIG_RESPONSE_VALUES``
    values, whatever the format: base64 costs less, but the rows are cut the same way)."""
    return vectors.size > BIG_RESPONSE_VALUES
