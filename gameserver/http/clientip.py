"""The address a request came from, seen through the proxies a deployment trusts.

Behind a load balancer that speaks HTTP, every request's peer is the balancer: the
per-IP limits (``PETBOX_RATE_IP``, the failed-authentication lockout) would then be one
budget for every shopper of the host, and a few wrong API keys would lock every merchant
out. ``PETBOX_TRUSTED_PROXIES`` names the balancers' networks; a request whose peer is
one of them is taken to come from the right-most ``X-Forwarded-For`` address that is
not (what each trusted hop appended; whatever a client wrote to the left of it is its
own word, not trusted). A peer outside those networks is the client itself, whatever
it sends: the header is read only from a proxy that is trusted to have written it.

(aiohttp-remotes' strict mode refuses direct connections and its filtered mode believes
the header from any peer; neither fits a deployment that takes both.)
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import hdrs, web

Network = IPv4Network | IPv6Network

TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[Network, ...])
"""The app's ``Settings.trusted_proxies`` (a key of its own: the access log, which
``gameserver.appkeys`` imports, needs this module)."""


MAX_HOPS = 16
"""Hops of ``X-Forwarded-For`` read at most, from the right: the client is within a few
hops of the balancer, and a header of thousands would cost each request a parse."""

_CACHED = web.RequestKey("client_ip", str)


def _address(text: str) -> IPv4Address | IPv6Address | None:
    """A hop as an address: ``1.2.3.4``, ``1.2.3.4:567``, ``::1``, ``[::1]:567``; an
    IPv4-mapped IPv6 address as its IPv4 one (one client, one budget); None for
    anything else (a zone id such as ``fe80::1%eth0`` among it: never a client's)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    if "%" in text:
        return None
    try:
        ip = ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IPv4Address | IPv6Address | None, networks: tuple[Network, ...]) -> bool:
    return ip is not None and any(ip in net for net in networks)


def client_ip(request: web.BaseRequest) -> str:
    """The client's address (``"-"`` when unknown): the peer, or behind trusted proxies
    the right-most ``X-Forwarded-For`` hop that is not trusted (the right-most one when
    all are: the address the balancer saw), normalised (no port, IPv4-mapped as IPv4).
    Worked out once per request."""
    cached = request.get(_CACHED)
    if cached is None:
        cached = request[_CACHED] = _client_ip(request)
    return cached


def _client_ip(request: web.BaseRequest) -> str:
    try:
        networks = request.app.get(TRUSTED_PROXIES, ())  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):  # a request aiohttp's parser refused
        networks = ()
    forwarded = request.headers.getall(hdrs.X_FORWARDED_FOR, ()) if networks else ()
    return pick(request.remote or "-", forwarded, networks)


def pick(peer: str, forwarded: Iterable[str], networks: tuple[Network, ...]) -> str:
    """The client of a request from ``peer`` with ``X-Forwarded-For`` lines
    ``forwarded``, behind the proxies in ``networks`` (see :func:`client_ip`)."""
    peer_ip = _address(peer)
    if not networks or not _trusted(peer_ip, networks):
        return str(peer_ip) if peer_ip is not None else peer
    header = ",".join(forwarded)
    hops = [hop for hop in header.rsplit(",", MAX_HOPS)[-MAX_HOPS:] if hop.strip()]
    addresses = [_address(hop) for hop in hops]
    for ip in reversed(addresses):
        if ip is None:
            return str(peer_ip)  # garbage a trusted hop passed on: the balancer's word
        if not _trusted(ip, networks):
            return str(ip)
    return str(addresses[-1]) if addresses else str(peer_ip)
