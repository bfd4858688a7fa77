"""Remote images: fetched only when the operator enables it, and then only under ``FetchPolicy``.

Order of the checks: the scheme (``http`` / ``https``; ``file:`` and every other scheme are always
refused), whether fetching is enabled, the host against the domain allowlist, then DNS: every address
the host resolves to must be public (``addresses.py``), and the connection goes to the checked address
itself (the URL's host is kept in the ``Host`` header and as the TLS server name, so certificates are
still verified against it). Redirects are never followed, proxies from the environment are ignored
(they would connect elsewhere), the whole fetch has one deadline, and the body is read in chunks and
dropped as soon as it passes the byte cap (decompressed bytes are what count).
"""

from __future__ import annotations

import asyncio

import httpx

from gateway.media.addresses import Resolver, resolve_public_address
from gateway.media.limits import FetchPolicy, ImageRejected

DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_image_url(url: str) -> httpx.URL:
    """An ``http(s)`` URL with a host.

    Raises:
        ImageRejected: ``file:`` or another scheme, no host, or not a URL.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ImageRejected("the image URL is not a valid URL") from None
    if parsed.scheme == "file":
        raise ImageRejected("file: URLs are never read; send the image as a data URI or base64")
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise ImageRejected(f"only http(s) image URLs can be fetched, not {parsed.scheme or 'this'!r} URLs")
    return parsed


async def fetch_image_bytes(url: str, policy: FetchPolicy, *,
                            resolve: Resolver = resolve_public_address) -> bytes:
    """Download the image at ``url`` under ``policy``.

    Args:
        url: the URL the client sent.
        policy: enabled, allowlist, deadline and byte cap.
        resolve: ``(host, port) -> address`` that checks what it returns (tests point it at a local server).

    Returns:
        The body, at most ``policy.max_bytes`` long.

    Raises:
        ImageRejected: any refusal or failure, with the reason (never the body of the answer).
    """
    target = parse_image_url(url)
    if not policy.enabled:
        raise ImageRejected("this server does not fetch image URLs (image_fetch_enabled is off); send the "
                            "image as a data URI or base64")
    if not policy.allows_host(target.host):
        raise ImageRejected(f"the image host '{target.host}' is not on this server's allowlist")
    try:
        async with asyncio.timeout(policy.timeout_s):
            address = await resolve(target.host, target.port or DEFAULT_PORTS[target.scheme])
            return await _download(target, address, policy)
    except TimeoutError:
        raise ImageRejected(f"fetching the image took longer than {policy.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise ImageRejected(f"the image could not be fetched ({type(exc).__name__})") from None


async def _download(target: httpx.URL, address: str, policy: FetchPolicy) -> bytes:
    """GET ``target`` from ``address`` without following redirects, streaming under the byte cap."""
    pinned = target.copy_with(host=address)
    headers = {"Host": target.netloc.decode("ascii"), "Accept": "image/*"}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=policy.timeout_s) as client:
        async with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
            if response.is_redirect:
                raise ImageRejected(f"the image URL answered with a redirect (HTTP {response.status_code}); "
                                    "redirects are not followed")
            if response.status_code != 200:
                raise ImageRejected(f"the image URL answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise ImageRejected(f"the image is {int(declared):,} bytes; at most {policy.max_bytes:,} "
                                    "are allowed")
            return await _read_capped(response, policy.max_bytes)


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body, refused as soon as more than ``max_bytes`` have arrived."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ImageRejected(f"the image is more than {max_bytes:,} bytes; at most {max_bytes:,} are "
                                "allowed")
    return bytes(body)
