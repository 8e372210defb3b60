"""Where an HTTP Task may not go: link-local and cloud metadata addresses (SSRF), by default.

A workflow's input can choose an HTTP Task's URL, so without this a caller could make the HTTP
step service read `http://169.254.169.254/` (the instance's cloud credentials) or another
link-local service. Every request the client sends (the task's, a redirect's when redirects are
on, an OAuth token request) is checked: the host's addresses (a literal, or what DNS answers) must
be outside `HttpSettings.blocked_networks`. Loopback and private networks stay allowed (local
services are a normal target); add them to the setting to refuse them too.

Not covered: DNS rebinding between this check and httpx's own resolution (a resolver that answers
differently the second time); run the service where the metadata endpoint needs a token (IMDSv2)
or behind an egress proxy if that matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx

from steps.http.errors import InvalidParameters

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_BLOCKED = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")


def networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def blocked(address: str, refused: list[Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is the same place
    return any(ip.version == net.version and ip in net for net in refused)


async def addresses(host: str) -> list[str]:
    """The host's addresses: itself when a literal, else what DNS answers (none if it does not)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # httpx fails the same lookup with a clear States.Http.Socket error
    return [str(info[4][0]) for info in infos]


def request_guard(refused: list[Network]) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook that refuses a scheme other than http(s) and a blocked destination."""

    async def check(request: httpx.Request) -> None:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise InvalidParameters(f"only http and https URLs may be called, not {url.scheme}:")
        if not refused:
            return
        for address in await addresses(url.host):
            if blocked(address, refused):
                raise InvalidParameters(
                    f"{url.host} ({address}) is a link-local or cloud metadata address, which HTTP Tasks may not "
                    "call (BATON_HTTP_BLOCKED_NETWORKS lists them; set it to [] to allow every address)")

    return check
