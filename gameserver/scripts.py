"""Lua scripts shipped in ``gameserver/lua`` (read once, registered once per client), and
the one helper their replies need.

redis-py's ``register_script`` runs them by SHA and reloads them after NOSCRIPT
(a restarted or failed-over Redis), so no caller ever handles that itself.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_script(name: str) -> str:
    """The source of ``gameserver/lua/<name>.lua``."""
    return resources.files("gameserver").joinpath(f"lua/{name}.lua").read_text()


def reply_text(raw: bytes | str) -> str:
    """A Redis reply as text (clients here run with ``decode_responses=False``)."""
    return raw.decode() if isinstance(raw, bytes) else raw
