"""How one shopper's id is shown to other shoppers, the same on every play's page."""

from __future__ import annotations

LONG = 10
"""From this length an id keeps two characters at each end (four of ten or more: the
hidden middle of at least six is too much to guess); a shorter one keeps its first
character alone, and one of two characters or less nothing."""


def masked_id(user: str) -> str:
    """A user id with its middle hidden (``oABCDEFxyz`` → ``oA***yz``): enough for a
    shopper to recognise themselves, too little to address another player.

    Shorter ids keep less: 3 to 9 characters show the first alone (``alice`` →
    ``a***``), 2 or less nothing (``***``). Whatever the id, one of these three forms of
    fixed length: the masked id tells how long the id is no closer than that."""
    if len(user) >= LONG:
        return f"{user[:2]}***{user[-2:]}"
    if len(user) >= 3:
        return f"{user[0]}***"
    return "***"
