"""Player tokens and signatures."""

from __future__ import annotations

import pytest

from gameserver.http.auth import (
    TokenSigner,
    bearer,
    body_signature,
    hash_api_key,
    new_api_key,
    session_signature,
    verify_session_signature,
)
from gameserver.http.errors import Unauthorized
from gameserver.state.keys import Keys, PlayerRef, shard_of, spread_tag


def test_token_round_trip_and_expiry() -> None:
    signer = TokenSigner("s" * 32, ttl=100)
    token, exp = signer.mint("shop", "u1", 1000)
    assert exp == 1100
    claims = signer.verify(token, 1099)
    assert (claims.merchant, claims.user, claims.expires_at) == ("shop", "u1", 1100)
    with pytest.raises(Unauthorized, match="expired"):
        signer.verify(token, 1100)


def test_remembered_tokens_still_expire_and_forgeries_are_never_remembered() -> None:
    signer = TokenSigner("s" * 32, ttl=100, cache_size=2)
    token, _ = signer.mint("shop", "u1", 1000)
    assert signer.verify(token, 1000).user == "u1"
    assert signer.verify(token, 1099).user == "u1"  # the remembered verification
    with pytest.raises(Unauthorized, match="expired"):
        signer.verify(token, 1100)
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="signature"):
            signer.verify(forged, 1000)
    assert forged not in signer._verified


def test_remembered_tokens_are_bounded_oldest_first() -> None:
    signer = TokenSigner("s" * 32, ttl=100, cache_size=2)
    tokens = [signer.mint("shop", f"u{i}", 1000)[0] for i in range(3)]
    for token in tokens:
        signer.verify(token, 1000)
    assert list(signer._verified) == tokens[1:]
    assert signer.verify(tokens[0], 1000).user == "u0"  # verified afresh, then kept
    assert list(signer._verified) == [tokens[2], tokens[0]]


def test_token_from_another_secret_is_refused() -> None:
    token, _ = TokenSigner("a" * 32, 100).mint("shop", "u1", 0)
    with pytest.raises(Unauthorized, match="signature"):
        TokenSigner("b" * 32, 100).verify(token, 1)


def test_session_signature_known_vector() -> None:
    # hmac.new(b"secret", b"shop\nu1\n1700000000", sha256).hexdigest()
    sign = session_signature("secret", "shop", "u1", 1700000000)
    assert sign == "915f4cde1871fa2118b7f64fd5ef615a97952b60f70ecbb191f88d0cdda96d67"
    assert verify_session_signature("secret", "shop", "u1", 1700000000, sign.upper())
    assert not verify_session_signature("secret", "shop", "u2", 1700000000, sign)


def test_body_signature_covers_ts_and_body() -> None:
    a = body_signature("k", "1", b"{}")
    assert a != body_signature("k", "2", b"{}") and a != body_signature("k", "1", b"{ }")


def test_api_keys_are_hashed() -> None:
    key = new_api_key()
    assert key.startswith("pbk_") and len(key) > 40
    assert hash_api_key(key) != key and len(hash_api_key(key)) == 64


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer"])
def test_bearer_refuses(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        bearer(header)


def test_keys_share_the_shard_tag() -> None:
    shard = shard_of("shop", "u1", 16)
    assert shard == shard_of("shop", "u1", 16) and 0 <= shard < 16
    ref = PlayerRef("shop", "g", "u1", shard)
    keys = Keys()
    tag = "{" + spread_tag("s", shard) + "}"
    for key in (keys.player(ref), keys.idempotency(ref, "k"), keys.dirty(shard),
                keys.active(shard), keys.ledger(shard), keys.epoch(shard)):
        assert key.split(":")[1] == tag
    assert Keys("pbs").player(ref).startswith("pbs:")
