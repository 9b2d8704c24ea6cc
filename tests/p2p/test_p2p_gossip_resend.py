"""Re-sending refused txs: `forget` lets a later copy through, `resend_to_peer` ignores
what the peer is believed to hold, and both stay bounded. And sending to one peer only
(`add_many(only=...)`, a Raft follower's forward to its leader)."""

from __future__ import annotations

import hashlib

import msgspec

from p2p.gossip import GossipLimits, TxGossip
from tests.p2p.p2p_helpers import RecordingTransport

PEER = b"p" * 32
OTHER = b"o" * 32


def make_gossip(
    delivered: list[bytes], peers: tuple[bytes, ...] = (PEER,)
) -> tuple[TxGossip, RecordingTransport]:
    transport = RecordingTransport(list(peers))
    gossip = TxGossip(
        transport,
        channel_id=2,
        on_txs=lambda _peer, txs: delivered.extend(txs),
        limits=GossipLimits(batch_txs_max=10),
    )
    return gossip, transport


def sent_txs(transport: RecordingTransport) -> list[bytes]:
    return [tx for _peer, txs in transport.sent for tx in txs]


def test_resend_reaches_a_peer_believed_to_hold_the_tx() -> None:
    gossip, transport = make_gossip([])
    assert gossip.add(b"tx-1")
    gossip.flush()
    assert sent_txs(transport) == [b"tx-1"]
    assert gossip.offer_to_peer(PEER, [b"tx-1"]) == 0, "offer skips what the peer has"
    assert gossip.resend_to_peer(PEER, [b"tx-1"]) == 1
    gossip.flush()
    assert sent_txs(transport) == [b"tx-1", b"tx-1"]


def test_resend_is_capped_per_call() -> None:
    gossip, transport = make_gossip([])
    assert gossip.resend_to_peer(PEER, [b"tx-%d" % i for i in range(25)]) == 10
    gossip.flush()
    assert len(sent_txs(transport)) == 10


def test_forget_lets_a_later_copy_be_delivered_again() -> None:
    delivered: list[bytes] = []
    gossip, transport = make_gossip(delivered)
    assert transport.on_message is not None
    batch = msgspec.msgpack.encode([b"tx-9"])
    transport.on_message(PEER, batch)
    transport.on_message(PEER, batch)
    assert delivered == [b"tx-9"], "a duplicate copy is not delivered twice"
    gossip.forget(b"tx-9")
    transport.on_message(PEER, batch)
    assert delivered == [b"tx-9", b"tx-9"]
    assert gossip.stats.txs_duplicate == 1


def test_add_many_keys_the_seen_cache_by_the_given_digests_and_counts_new_txs() -> None:
    """The node passes the digests its mempool computed: gossip keys its seen-cache by them
    (no second SHA-256), floods each new tx once, and skips what it already forwarded or
    what its peer sent it; oversized txs are dropped and counted."""
    delivered: list[bytes] = []
    gossip, transport = make_gossip(delivered)
    assert transport.on_message is not None
    transport.on_message(PEER, msgspec.msgpack.encode([b"from-peer"]))
    txs = [b"a", b"b", b"from-peer", bytes(70_000)]
    digests = [hashlib.sha256(tx).digest() for tx in txs]
    assert gossip.add_many(txs, digests) == 3, "from-peer is new to add, not to the peer"
    assert gossip.add_many(txs[:2], digests[:2]) == 0, "already forwarded"
    gossip.flush()
    assert sent_txs(transport) == [b"a", b"b"], "nothing goes back to the peer that sent it"
    assert gossip.stats.drops["too_large"] == 1
    gossip.forget_digest(digests[0])
    assert gossip.add(b"a"), "the digest given is the cache key"


def test_only_one_peer_gets_txs_sent_to_it_and_they_count_as_gossiped() -> None:
    gossip, transport = make_gossip([], peers=(PEER, OTHER))
    assert gossip.add_many([b"tx-1", b"tx-2"], only=PEER) == 2
    gossip.flush()
    assert transport.sent == [(PEER, [b"tx-1", b"tx-2"])]
    assert gossip.add_many([b"tx-1", b"tx-2"]) == 0, "already gossiped: not flooded later"
    assert gossip.offer_to_peer(OTHER, [b"tx-1", b"tx-2"]) == 2, "another peer can be offered them"
    assert gossip.offer_to_peer(PEER, [b"tx-1"]) == 0
    gossip.flush()
    assert transport.sent[1:] == [(OTHER, [b"tx-1", b"tx-2"])]
