"""Share codes stay byte-identical: a code a shopper already sent to friends must
still find its group, assist or team. One known code per play, from a fixed secret
and the fields each handler passes."""

from __future__ import annotations

from gameserver.api.assist import share_code
from gameserver.api.groupbuy import group_code
from gameserver.api.teams import team_code

SECRET = "pinned-token-secret"


def test_group_buy_code_is_pinned() -> None:
    assert group_code(SECRET, "shop", "squirrel", "duo", "alice", "key-1") == "dky3anas3p"


def test_assist_code_is_pinned() -> None:
    assert share_code(SECRET, "shop", "squirrel", "friends", "alice", 1) == "aetpax7flu"


def test_team_code_is_pinned() -> None:
    assert team_code(SECRET, "shop", "squirrel", "s11", "alice", "key-1") == \
        ("sk7g22dd", "d3myrmwx")

