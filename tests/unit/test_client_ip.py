"""Who a request comes from behind trusted balancers (``PETBOX_TRUSTED_PROXIES``):
the right-most forwarded hop that is not trusted, normalised, and never what a peer
outside the trusted networks writes."""

from __future__ import annotations

import pytest

from gameserver.http.clientip import MAX_HOPS, pick
from gameserver.ops.settings import load_settings

NETS = load_settings({"PETBOX_TOKEN_SECRET": "s" * 32, "PETBOX_DATA_DIR": "/nonexistent",
                      "PETBOX_TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("198.51.100.9", ["1.2.3.4"], "198.51.100.9"),  # not a balancer: its header is ignored
    ("10.0.0.2", ["1.2.3.4, 203.0.113.7"], "203.0.113.7"),  # left of the hop: the client's word
    ("10.0.0.2", ["1.2.3.4", "203.0.113.7"], "203.0.113.7"),  # two header lines, in order
    ("10.0.0.2", ["10.9.9.9, 203.0.113.7"], "203.0.113.7"),
    ("10.0.0.2", [" , ,1.2.3.4 ,  203.0.113.7 , "], "203.0.113.7"),  # empty hops skipped
    ("10.0.0.2", ["203.0.113.7:51234"], "203.0.113.7"),  # a port (some balancers add it)
    ("10.0.0.2", ["[2001:db8::7]:443"], "2001:db8::7"),
    ("10.0.0.2", ["203.0.113.7, ::ffff:10.0.0.3"], "203.0.113.7"),  # a mapped inner proxy
    ("::ffff:10.0.0.2", ["203.0.113.7"], "203.0.113.7"),  # a dual-stack listener's peer
    ("10.0.0.2", ["::ffff:203.0.113.7"], "203.0.113.7"),  # one client, one spelling
    ("10.0.0.2", ["10.66.66.66, 10.1.1.1"], "10.1.1.1"),  # all trusted: what the balancer saw
    ("10.0.0.2", ["fe80::1%x rid=forged peer=6.6.6.6"], "10.0.0.2"),  # never into the log
    ("10.0.0.2", ["garbage, 203.0.113.7"], "203.0.113.7"),
    ("10.0.0.2", ["203.0.113.7, garbage"], "10.0.0.2"),
    ("10.0.0.2", [], "10.0.0.2"),
    ("::ffff:198.51.100.9", [], "198.51.100.9"),
    ("10.0.0.2", [", ".join(["198.51.100.1"] + ["10.0.0.9"] * (MAX_HOPS + 5))], "10.0.0.9"),
])
def test_the_client_behind_trusted_balancers(peer: str, forwarded: list[str],
                                             client: str) -> None:
    assert pick(peer, forwarded, NETS) == client


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert pick("10.0.0.2", ["203.0.113.7"], ()) == "10.0.0.2"
