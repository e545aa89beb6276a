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

from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import hdrs, web

Network = IPv4Network | IPv6Network

TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[Network, ...])
"""The app's ``Settings.trusted_proxies`` (a key of its own: the access log, which
``gameserver.appkeys`` imports, needs this module)."""


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: web.BaseRequest) -> str:
    """The client's address (``"-"`` when unknown): the peer, or behind trusted proxies
    the right-most untrusted ``X-Forwarded-For`` hop (the left-most when all are
    trusted)."""
    peer = request.remote or "-"
    app = getattr(request, "app", None)  # the access log may see a bare request
    networks = app.get(TRUSTED_PROXIES, ()) if app is not None else ()
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for value in request.headers.getall(hdrs.X_FORWARDED_FOR, ())
            for hop in value.split(",")]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop if _is_ip(hop) else peer  # garbage a trusted hop passed on
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
