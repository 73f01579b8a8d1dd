"""Webhook URLs may only reach the public internet, unless the operator allows private addresses.

Checked when a URL is accepted, again right before each send, and on the
addresses each connection is made to (``GuardedNetwork``): a name that later
points inside the network is refused, and so is one whose DNS answers the
check with a public address and the connection with an internal one (DNS
rebinding), since the connection uses the very addresses it checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore

from core.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services: refused even where private addresses are allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


def _is_internal(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _is_internal(address.ipv4_mapped)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def resolve_host(host: str, port: int, param: str = "webhook_url") -> list[Address]:
    """The addresses ``host`` resolves to, in the resolver's order of preference, each once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidRequest(f"webhook host {host!r} does not resolve", param=param) from exc
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def check_addresses(addresses: Iterable[Address], allow_private: bool, param: str = "webhook_url") -> None:
    """InvalidRequest saying why, if any of ``addresses`` may not receive webhooks."""
    for address in addresses:
        if address in METADATA_ADDRESSES:
            raise InvalidRequest(f"{param} points at a cloud metadata address ({address})", param=param)
        if _is_internal(address) and not allow_private:
            raise InvalidRequest(
                f"{param} resolves to {address}, a loopback, private or otherwise internal address; "
                "webhooks go to public addresses (operators: TUNEQ_ALLOW_PRIVATE_WEBHOOKS=true)",
                param=param,
            )


def check_webhook_url(url: str, allow_private: bool, param: str = "webhook_url") -> str:
    """Return ``url`` if it may receive webhooks; InvalidRequest saying why not otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{param} must be an http(s) URL with a host", param=param)
    if parts.username or parts.password:
        raise InvalidRequest(f"{param} must not carry credentials; use the webhook signature instead", param=param)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidRequest(f"{param} has an invalid port", param=param) from exc
    check_addresses(resolve_host(parts.hostname, port, param), allow_private, param)
    return url


class GuardedNetwork(httpcore.SyncBackend):
    """httpcore's network for webhook sends: each connection resolves its host once, checks every address,
    and connects only to those it checked. TLS still verifies and names the host, not the address."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_host(host, port, param="url")
            check_addresses(addresses, self.allow_private, param="url")
        except InvalidRequest as exc:
            raise httpcore.ConnectError(f"refused to connect: {exc.message}") from exc
        for address in addresses[:-1]:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue  # the next address, as socket.create_connection does
        return super().connect_tcp(str(addresses[-1]), port, timeout, local_address, socket_options)
