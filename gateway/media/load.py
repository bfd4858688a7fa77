"""Decode every image of a request in place: ``ImagePart.image`` and its metadata, under the limits.

URLs are fetched first (only under an enabled ``FetchPolicy``, a few at a time, on the event loop: it is
network waiting), then every image is decoded in one worker thread, so the event loop never decodes.
"""

from __future__ import annotations

import asyncio

from gateway.inputs import ImagePart, InputItem
from gateway.media.addresses import Resolver, resolve_public_address
from gateway.media.decode import bytes_from_base64, bytes_from_data_uri, decode_image
from gateway.media.fetch import fetch_image_bytes
from gateway.media.limits import FetchPolicy, ImageLimits, ImageRejected

PARALLEL_FETCHES = 8


async def load_images(items: list[InputItem], limits: ImageLimits, policy: FetchPolicy, *,
                      resolve: Resolver = resolve_public_address) -> None:
    """Read and decode the image parts of ``items`` (text parts are left alone).

    Sets ``image`` (upright RGB ``PIL.Image``), ``nbytes``, ``format`` and ``bit_depth`` of every part.

    Raises:
        ImageRejected: the first image refused, with ``index`` set to its input's position.
    """
    parts = [(index, part) for index, item in enumerate(items) for part in item.images]
    if not parts:
        return
    fetched = await _fetch_urls([(i, p) for i, p in parts if p.kind == "url"], policy, resolve)
    await asyncio.to_thread(_decode_all, parts, fetched, limits)


async def _fetch_urls(parts: list[tuple[int, ImagePart]], policy: FetchPolicy,
                      resolve: Resolver) -> dict[int, bytes]:
    """``id(part) -> body`` of every URL part (raises the first refusal, in input order)."""
    gate = asyncio.Semaphore(PARALLEL_FETCHES)

    async def fetch(index: int, part: ImagePart) -> bytes:
        async with gate:
            try:
                return await fetch_image_bytes(part.source, policy, resolve=resolve)
            except ImageRejected as exc:
                exc.index = index
                raise

    bodies = await asyncio.gather(*(fetch(i, p) for i, p in parts))
    return {id(part): body for (_, part), body in zip(parts, bodies, strict=True)}


def _decode_all(parts: list[tuple[int, ImagePart]], fetched: dict[int, bytes], limits: ImageLimits) -> None:
    """Decode each part in order, keeping the request's decoded pixels under ``max_request_pixels``."""
    remaining = limits.max_request_pixels
    for index, part in parts:
        try:
            data = fetched[id(part)] if part.kind == "url" else _inline_bytes(part, limits.max_bytes)
            decoded = decode_image(data, limits, pixel_budget=remaining)
        except ImageRejected as exc:
            exc.index = index
            raise
        part.image, part.nbytes = decoded.image, len(data)
        part.format, part.bit_depth = decoded.format, decoded.bit_depth
        remaining -= part.pixels


def _inline_bytes(part: ImagePart, max_bytes: int) -> bytes:
    """The bytes of a data URI or raw base64 part."""
    if part.kind == "data_uri":
        return bytes_from_data_uri(part.source, max_bytes)
    return bytes_from_base64(part.source, max_bytes)
