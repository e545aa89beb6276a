"""The provably fair draw: the documented algorithm, recomputed independently."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from economy.boxes import Table
from economy.errors import InvalidInput
from economy.fairness import (
    check_client_seed,
    draw_entry,
    roll,
    seed_hash,
    verify_draw,
)
from tests.unit.boxes_factory import series

ZERO = "00" * 32


def by_hand(seed: str, client: str, nonce: int, table: list[tuple[str, int]]) -> str:
    """docs/fairness.md, written out without petbox code."""
    key = bytes.fromhex(seed)
    from math import gcd
    g = 0
    for _, w in table:
        g = gcd(g, w)
    weights = [(item, w // g) for item, w in table if w > 0]
    total = sum(w for _, w in weights)
    limit = 2**256 - 2**256 % total
    msg, retry = f"{client}:{nonce}", 0
    u = int.from_bytes(hmac.new(key, msg.encode(), hashlib.sha256).digest(), "big")
    while u >= limit:
        retry += 1
        u = int.from_bytes(hmac.new(key, f"{msg}:{retry}".encode(), hashlib.sha256).digest(),
                           "big")
    r, run = u % total, 0
    for item, w in weights:
        run += w
        if r < run:
            return item
    raise AssertionError


def test_seed_hash_is_sha256_of_the_seed_bytes() -> None:
    assert seed_hash(ZERO) == \
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"


@pytest.mark.parametrize("nonce", range(20))
def test_verify_draw_matches_the_documented_algorithm(nonce: int) -> None:
    table = [("a", 800), ("b", 150), ("c", 0), ("z", 50)]
    seed = hashlib.sha256(b"test").hexdigest()
    got = verify_draw(seed, "client", nonce, table)
    assert got.item == by_hand(seed, "client", nonce, table)
    assert got.total == 20 and 0 <= got.roll < 20  # weights divided by their gcd (50)


def test_rejection_sampling_retries_with_a_counter() -> None:
    key = bytes(32)
    u0 = int.from_bytes(hmac.digest(key, b"c:7", "sha256"), "big")
    u1 = int.from_bytes(hmac.digest(key, b"c:7:1", "sha256"), "big")
    # pretend u0 is past the limit: the roll must come from the ":1" retry
    limit = u0 if u1 < u0 else u1 + 1
    if u1 < u0:
        assert roll(key, "c", 7, 1000, limit=limit) == u1 % 1000
    assert roll(key, "c", 7, 1000) == u0 % 1000


def test_draw_entry_is_the_same_mapping() -> None:
    s = series()
    key = bytes.fromhex(ZERO)
    for nonce in range(50):
        step = draw_entry(s, key, "x", nonce, hard=0, soft=0, ten_needed=False,
                          out=frozenset(), blocked=frozenset(), skipped=frozenset())
        expect = by_hand(ZERO, "x", nonce, [("a", 80), ("b", 15), ("z", 5)])
        assert s.entries[step.entry].id == expect


def test_seeds_are_validated() -> None:
    with pytest.raises(InvalidInput):
        seed_hash("xyz")
    with pytest.raises(InvalidInput):
        seed_hash("AA" * 32)  # lowercase only: one spelling per seed
    with pytest.raises(InvalidInput):
        check_client_seed("a:b")
    assert check_client_seed("") == ""
    with pytest.raises(InvalidInput):
        verify_draw(ZERO, "", 0, [("a", 0)])


def test_table_reduces_by_gcd_and_skips_zero_weights() -> None:
    t = Table.of([(0, 10), (1, 0), (2, 30)])
    assert t is not None and t.ids == (0, 2) and t.weights == (1, 3) and t.total == 4
    assert Table.of([(0, 0)]) is None
