"""Webhook URLs may only reach the public internet, unless the operator allows private addresses.

Checked when a URL is accepted and again right before each send, after DNS
resolution, so a name that later points inside the network is refused then.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from core.errors import InvalidRequest

# Cloud metadata services: refused even where private addresses are allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
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


def resolve_host(host: str, port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidRequest(f"webhook host {host!r} does not resolve", param="webhook_url") from exc
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


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
    for address in resolve_host(parts.hostname, port):
        if address in METADATA_ADDRESSES:
            raise InvalidRequest(f"{param} points at a cloud metadata address ({address})", param=param)
        if _is_internal(address) and not allow_private:
            raise InvalidRequest(
                f"{param} resolves to {address}, a loopback, private or otherwise internal address; "
                "webhooks go to public addresses (operators: TUNEQ_ALLOW_PRIVATE_WEBHOOKS=true)",
                param=param,
            )
    return url
