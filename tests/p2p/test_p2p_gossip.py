"""Tx gossip over real P2PNodes: once per peer, never echoed, batched, bounded."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import msgspec
import pytest

from p2p.gossip import GossipLimits, TxGossip
from p2p.manager import P2PNode
from tests.p2p.p2p_helpers import address_of, make_config, public_key, wait_until
from tests.p2p.p2p_throughput import measure_gossip

GOSSIP_CHANNEL = 2


class Mesh:
    """N nodes, fully connected; each node re-gossips every tx it receives (flooding), as
    the node does after admitting a tx to its mempool."""

    def __init__(self, size: int, limits: GossipLimits) -> None:
        self.nodes: list[P2PNode] = []
        self.gossips: list[TxGossip] = []
        self.delivered: list[list[tuple[bytes, bytes]]] = [[] for _ in range(size)]
        self._size = size
        self._limits = limits

    async def start(self) -> None:
        for index in range(self._size):
            peers = [address_of(self.nodes[i], i) for i in range(index)]
            node = P2PNode(make_config(index, allowed=range(self._size), peers=peers))
            gossip = TxGossip(
                node,
                channel_id=GOSSIP_CHANNEL,
                on_txs=self._make_receiver(index),
                limits=self._limits,
            )
            await node.start()
            gossip.start()
            self.nodes.append(node)
            self.gossips.append(gossip)
        await wait_until(lambda: all(len(n.connected_keys()) == self._size - 1 for n in self.nodes))

    def _make_receiver(self, index: int) -> Callable[[bytes, list[bytes]], None]:
        def receive(peer_key: bytes, txs: list[bytes]) -> None:
            for tx in txs:
                self.delivered[index].append((peer_key, tx))
                self.gossips[index].add(tx)

        return receive

    async def stop(self) -> None:
        for gossip in self.gossips:
            await gossip.stop()
        for node in self.nodes:
            await node.stop()


@pytest.mark.slow
async def test_gossip_delivers_each_tx_once_per_node_and_never_echoes_back() -> None:
    mesh = Mesh(3, GossipLimits(batch_txs_max=10, flush_interval_s=0.005))
    await mesh.start()
    try:
        txs = [b"tx-%03d" % i + bytes(200) for i in range(95)]
        for tx in txs:
            assert mesh.gossips[0].add(tx)
        assert not mesh.gossips[0].add(txs[0]), "a second add is a no-op"
        await wait_until(lambda: all(len(mesh.delivered[i]) == 95 for i in (1, 2)))
        for index in (1, 2):
            assert sorted(tx for _, tx in mesh.delivered[index]) == sorted(txs)
        assert mesh.delivered[0] == [], "a tx came back to its origin"
        # The origin sent to two peers in batches of at most 10; nothing flowed back to it.
        assert mesh.gossips[0].stats.txs_sent == 2 * 95
        assert mesh.gossips[0].stats.batches_sent >= 2 * 10
        assert mesh.gossips[0].stats.batches_received == 0
        # Each forwarder sends a tx at most once, and only to the one peer that lacks it.
        assert mesh.gossips[1].stats.txs_sent <= 95
        assert mesh.gossips[2].stats.txs_sent <= 95
    finally:
        await mesh.stop()


def lone_gossip(limits: GossipLimits, clock: list[float]) -> TxGossip:
    """A gossip on a node that is not started: no peers, so only the cache is exercised."""
    node = P2PNode(make_config(0, allowed=range(2)))
    return TxGossip(
        node,
        channel_id=GOSSIP_CHANNEL,
        on_txs=lambda _p, _t: None,
        limits=limits,
        clock=lambda: clock[0],
    )


def test_seen_cache_has_a_hard_count_cap_and_a_ttl() -> None:
    clock = [0.0]
    gossip = lone_gossip(GossipLimits(seen_max=100, seen_ttl_s=10.0), clock)
    for i in range(250):
        assert gossip.add(b"tx %d" % i)
    assert gossip.seen_count() == 100
    assert not gossip.add(b"tx 249"), "recent tx still remembered"
    assert gossip.add(b"tx 0"), "oldest tx was evicted by the count cap"
    clock[0] = 11.0
    gossip.add(b"fresh")
    assert gossip.seen_count() == 1, "entries older than the TTL are forgotten"


def test_oversized_tx_is_not_gossiped() -> None:
    gossip = lone_gossip(GossipLimits(tx_bytes_max=100, batch_bytes_max=1000), [0.0])
    assert not gossip.add(bytes(101))
    assert gossip.stats.drops["too_large"] == 1


@pytest.mark.slow
async def test_undecodable_and_duplicate_batches_are_counted_not_delivered() -> None:
    mesh = Mesh(2, GossipLimits())
    await mesh.start()
    try:
        node_1 = mesh.nodes[1]
        assert node_1.send(public_key(0), GOSSIP_CHANNEL, b"\xc1 not msgpack")
        tx = b"dup"
        batch = msgspec.msgpack.encode([tx, tx])
        assert node_1.send(public_key(0), GOSSIP_CHANNEL, batch)
        await wait_until(lambda: mesh.gossips[0].stats.batches_received == 1)
        assert mesh.gossips[0].stats.drops["undecodable"] == 1
        assert mesh.delivered[0] == [(public_key(1), tx)]
        assert mesh.gossips[0].stats.txs_duplicate == 1
        # The receiver re-gossiped it (Mesh calls add), but node 1, its source, is skipped.
        assert not mesh.gossips[0].add(tx), "already forwarded"
        mesh.gossips[0].flush()
        assert mesh.gossips[0].stats.txs_sent == 0
    finally:
        await mesh.stop()


@pytest.mark.slow
async def test_gossip_throughput_harness_delivers_every_tx() -> None:
    """The gossip benchmark (docs/P2P.md) on a small count: correctness, not speed."""
    result = await measure_gossip(count=2000)
    assert result.messages == 2000
    assert result.frames <= 2000 // 1000 + 5, "txs were not batched"


def test_hashed_receiver_gets_each_fresh_tx_with_its_sha256_and_forget_digest_readmits() -> None:
    node = P2PNode(make_config(0, allowed=range(2)))
    received: list[tuple[list[bytes], list[bytes]]] = []
    gossip = TxGossip(
        node,
        channel_id=GOSSIP_CHANNEL,
        on_hashed_txs=lambda _peer, txs, digests: received.append((txs, digests)),
    )
    peer = public_key(1)
    gossip._on_message(peer, msgspec.msgpack.encode([b"a", b"b", b"a"]))
    assert received == [
        ([b"a", b"b"], [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()])
    ]
    gossip._on_message(peer, msgspec.msgpack.encode([b"a", b"b"]))
    assert len(received) == 1, "duplicates are not delivered again"
    gossip.forget_digest(hashlib.sha256(b"b").digest())
    gossip._on_message(peer, msgspec.msgpack.encode([b"a", b"b"]))
    assert received[-1] == ([b"b"], [hashlib.sha256(b"b").digest()]), "a forgotten tx comes back"


def test_exactly_one_receive_callback() -> None:
    node = P2PNode(make_config(0, allowed=range(2)))
    with pytest.raises(AssertionError):
        TxGossip(node, channel_id=GOSSIP_CHANNEL)
