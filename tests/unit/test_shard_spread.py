"""Shard hash tags are placed so that shards spread evenly over a Redis Cluster's masters
(each master a contiguous slot range, as `redis-cli --cluster create` assigns them)."""

from __future__ import annotations

from collections import Counter

import pytest
from redis.crc import key_slot

from gameserver.state.keys import AGGREGATE_OFFSET, SLOTS, Keys, spread_tag


def per_master(tags: list[str], masters: int) -> list[int]:
    """How many of ``tags`` each of ``masters`` equal slot ranges holds."""
    counts: Counter[int] = Counter(key_slot(t.encode()) * masters // SLOTS for t in tags)
    return [counts[m] for m in range(masters)]


@pytest.mark.parametrize(("shards", "masters", "expected"), [
    (16, 3, [6, 5, 5]),        # plain {s<N>} tags gave 6/4/6
    (4, 3, [2, 1, 1]),
    (1024, 3, [341, 342, 341]),
])
def test_shards_spread_over_masters(shards: int, masters: int, expected: list[int]) -> None:
    assert per_master([Keys().tag(i) for i in range(shards)], masters) == expected


@pytest.mark.parametrize("masters", [2, 3, 5, 7, 10, 31, 64, 100])
def test_1024_shards_spread_within_two_on_any_cluster(masters: int) -> None:
    counts = per_master([Keys().tag(i) for i in range(1024)], masters)
    assert sum(counts) == 1024 and max(counts) - min(counts) <= 2


def test_tags_are_stable_and_distinct() -> None:
    tags = [spread_tag("s", i) for i in range(1024)]
    assert len(set(tags)) == 1024
    assert tags[:2] == ["s0.557", "s1.181"]  # stored keys depend on these: never change
    assert Keys().tag(3) == "pb:{" + spread_tag("s", 3) + "}"
    slots = [key_slot(t.encode()) for t in tags]
    assert len({s // 16 for s in slots}) == 1024  # one 16-slot window each


def test_aggregate_shards_spread_beside_player_shards() -> None:
    keys = Keys()
    for i in range(1024):
        player, aggregate = (key_slot(keys.tag(i).encode()),
                             key_slot(keys.aggregate_tag(i).encode()))
        assert aggregate // 16 == (player // 16 + AGGREGATE_OFFSET) % 1024
    assert per_master([keys.aggregate_tag(i) for i in range(16)], 3) == [6, 5, 5]
