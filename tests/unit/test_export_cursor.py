"""Export cursors: opaque, of one length, bound to merchant, game and key; v1 still read."""

from __future__ import annotations

import pytest

from economy.errors import InvalidInput
from gameserver.db.export_cursor import CursorCodec

SECRET = "s" * 32


def test_round_trip_one_length_and_bound() -> None:
    codec = CursorCodec(SECRET, "shop", "squirrel", 7)
    small, big = (0,) * 7, (2**63 - 1, 10**15, 7, 1, 0, 99, 2**40)
    assert codec.decode(codec.encode(small)) == small
    assert codec.decode(codec.encode(big)) == big
    assert len(codec.encode(small)) == len(codec.encode(big)) == 101
    assert codec.encode(big) == codec.encode(big)  # deterministic: same place, same cursor
    assert codec.decode("") == small
    for other in (CursorCodec(SECRET, "shop", "other", 7),
                  CursorCodec(SECRET, "sho", "psquirrel", 7),
                  CursorCodec("t" * 32, "shop", "squirrel", 7)):
        with pytest.raises(InvalidInput):
            other.decode(codec.encode(big))


def test_legacy_cursors_and_garbage() -> None:
    codec = CursorCodec(SECRET, "shop", "squirrel", 7)
    assert codec.decode("v1.5.6.7") == (5, 6, 7, 0, 0, 0, 0)
    assert codec.decode("v1.5.6.7.8") == (5, 6, 7, 8, 0, 0, 0)
    fewer = CursorCodec(SECRET, "shop", "squirrel", 5)  # a release with fewer sources
    assert codec.decode(fewer.encode((1, 2, 3, 4, 5))) == (1, 2, 3, 4, 5, 0, 0)
    with pytest.raises(InvalidInput):  # one of a release with more sources than this one
        fewer.decode(codec.encode((1,) * 7))
    for bad in ("v1.5.6", "v1.5.6.7.8.9", "v2.", "v2.!!", "v2." + "A" * 190, "v3.abc", "x"):
        with pytest.raises(InvalidInput):
            codec.decode(bad)
