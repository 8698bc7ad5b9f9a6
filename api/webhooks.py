"""Webhook targets: only public addresses, checked when subscribing and at every delivery.

A webhook makes the service open a connection wherever a subscriber says, so an unchecked URL
turns it into a probe of the operator's own network (the cloud metadata address, loopback
admin ports, private ranges). A target must be `http` or `https`, carry no credentials, and
resolve only to global unicast addresses; the delivery then connects to the very address that
was checked (the Host header and TLS name stay the URL's), so a DNS answer that changes between
check and connect (rebinding) cannot redirect it. Redirects are not followed.

`allow_private` (the `--allow-private-webhooks` setting, for development and tests) lifts the
address rule only.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ledger.errors import InputError


class TargetRefused(InputError):
    """The URL may not be a webhook target (scheme, credentials, or a non-public address)."""


@dataclass(frozen=True)
class Target:
    """A vetted webhook target: where to connect, and what to call it there."""

    url: str  # as the subscriber gave it
    connect_url: str  # the same with the host replaced by the checked address
    host_header: str  # what the Host header says: the URL's host (and port, if it named one)
    server_name: str  # the name TLS asks for and checks the certificate against


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not ip.is_multicast


def vet(url: str, *, allow_private: bool = False) -> Target:
    """Check `url` as a webhook target and resolve it.

    Raises:
        TargetRefused: not http(s), credentials in it, no host, unresolvable, or (unless
            `allow_private`) any address it resolves to is not public.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("a webhook URL is http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefused("a webhook URL carries no credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise TargetRefused("a webhook URL names a host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"{host} does not resolve: {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise TargetRefused(f"{host} does not resolve")
    if not allow_private and not all(_public(a) for a in addresses):
        raise TargetRefused(
            "webhook targets must be public addresses: loopback, private, link-local, "
            "multicast and reserved ones are refused"
        )
    chosen = addresses[0]
    literal = f"[{chosen}]" if ":" in chosen else chosen
    netloc = f"{literal}:{port}"
    connect = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    header = parts.netloc.rsplit("@", 1)[-1]
    return Target(url, connect, header, host)
