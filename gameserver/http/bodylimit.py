"""How large a request body may be, per operation.

One mechanism: aiohttp's ``client_max_size``. The application's is ``PETBOX_MAX_BODY``
(64 KiB), the cap of every shopper route, so a midnight's walls cannot make a server
buffer megabytes each. Config writes (operations marked ``config_body``) carry a whole
game config, or overrides that replace whole sections of one: their handler runs on a
clone of the request whose ``client_max_size`` is ``PETBOX_MAX_CONFIG_BODY``
(:func:`with_body_limit`). Those handlers authenticate before they read, so only a
merchant key gets the larger cap used. ``request.read()`` raises aiohttp's 413 past the
cap, and :func:`gameserver.http.errors.error_middleware` answers it with the cap in bytes,
taken from :func:`body_limit`, the same table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY_LIMITS = web.AppKey("body_limits", dict[str, int])
"""operationId → its body cap, bytes, where it is not the application's
``client_max_size``."""


def with_body_limit(handler: Handler, limit: int) -> Handler:
    """``handler`` reading bodies of up to ``limit`` bytes (aiohttp has one
    ``client_max_size`` per application; a clone of the request carries another)."""

    async def limited(request: web.Request) -> web.StreamResponse:
        return await handler(request.clone(client_max_size=limit))

    limited.__doc__ = handler.__doc__
    return limited


def body_limit(request: web.Request) -> int:
    """The largest body ``request``'s operation accepts, bytes."""
    limits = request.app.get(BODY_LIMITS, {})
    return limits.get(request.match_info.route.name or "", request.client_max_size)
