"""Which network addresses a remote image may be fetched from: public unicast addresses only.

The check runs on the addresses a host name *resolves to*, and the fetcher then connects to the very
address it checked (``resolve_public_address``), so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot point the fetch at the server's own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from gateway.media.limits import ImageRejected

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the address to connect to; tests inject their own
Resolver = Callable[[str, int], Awaitable[str]]


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be fetched from (``loopback``, ``private``...), None for a public one.

    IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, 6to4) are judged as the IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return refusal_reason(embedded)
    for kind, test in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                       ("unspecified", address.is_unspecified), ("multicast", address.is_multicast),
                       ("reserved", address.is_reserved), ("private", address.is_private)):
        if test:
            return kind
    return None if address.is_global else "non-public"


def check_addresses(host: str, addresses: list[str]) -> str:
    """The first of ``host``'s resolved ``addresses`` when every one of them is public.

    Raises:
        ImageRejected: no address, or one of them is loopback, private, link-local, reserved... (all are
            checked: a name answering both a public and a private address is refused).
    """
    if not addresses:
        raise ImageRejected(f"the image host '{host}' did not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        reason = refusal_reason(address)
        if reason is not None:
            raise ImageRejected(f"the image host '{host}' resolves to {address}, a {reason} address; only "
                                "public addresses are fetched")
    return addresses[0]


async def resolve_public_address(host: str, port: int) -> str:
    """Resolve ``host`` (a name or an IP literal) and return an address to connect to, all checked public.

    Raises:
        ImageRejected: the name does not resolve, or resolves to a non-public address.
    """
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ImageRejected(f"the image host '{host}' did not resolve") from None
    return check_addresses(host, list(dict.fromkeys(info[4][0] for info in infos)))
