"""How one shopper's id is shown to other shoppers, the same on every play's page."""

from __future__ import annotations


def masked_id(user: str) -> str:
    """A user id with its middle hidden (``oABCDEFxyz`` → ``oA***yz``): enough for a
    shopper to recognise themselves, too little to address another player."""
    if len(user) <= 2:
        return "***"
    keep = 1 if len(user) <= 6 else 2
    return f"{user[:keep]}***{user[-keep:]}"
