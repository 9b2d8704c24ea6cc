"""Shared helpers for the p2p tests: deterministic keys, fast limits, polling, a recording
gossip transport."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import msgspec
from nacl.signing import SigningKey

from p2p.config import P2PConfig, P2PLimits, PeerAddress
from p2p.manager import P2PNode

CHAIN_ID = "seoulchain-test"

FAST_LIMITS = P2PLimits(
    handshake_timeout_s=1.0,
    dial_timeout_s=1.0,
    keepalive_interval_s=0.2,
    idle_timeout_s=1.5,
    write_timeout_s=1.5,
    backoff_base_s=0.05,
    backoff_max_s=0.4,
    ban_base_s=0.3,
    ban_max_s=1.0,
)


def signing_key(index: int) -> SigningKey:
    return SigningKey(bytes([index + 1]) * 32)


def public_key(index: int) -> bytes:
    return bytes(signing_key(index).verify_key)


def make_config(
    index: int,
    *,
    allowed: range | list[int],
    peers: list[PeerAddress] | None = None,
    limits: P2PLimits = FAST_LIMITS,
    listen_port: int = 0,
) -> P2PConfig:
    return P2PConfig(
        chain_id=CHAIN_ID,
        signing_key=signing_key(index),
        allowed_keys=frozenset(public_key(i) for i in allowed),
        listen_host="127.0.0.1",
        listen_port=listen_port,
        persistent_peers=tuple(peers or ()),
        limits=limits,
        rng=random.Random(index),
    )


class Inbox:
    """Collects (peer, payload) pairs delivered to a channel callback."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []

    def __call__(self, peer_key: bytes, payload: bytes) -> None:
        self.items.append((peer_key, payload))

    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.items]


async def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Poll until predicate() holds; fail with a clear message after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.01)


def address_of(node: P2PNode, index: int) -> PeerAddress:
    return PeerAddress(public_key(index), "127.0.0.1", node.listen_port)


async def connected_pair(
    *, channels: tuple[int, ...] = (1, 2), send_queue_max: int = 1000
) -> tuple[P2PNode, P2PNode, dict[tuple[int, int], Inbox]]:
    """Node 0 listens; node 1 dials it. Returns both and their inboxes by (node, channel)."""
    node_a = P2PNode(make_config(0, allowed=range(3)))
    inboxes: dict[tuple[int, int], Inbox] = {}
    for channel in channels:
        inboxes[0, channel] = Inbox()
        node_a.register_channel(
            channel, inboxes[0, channel], send_queue_max=send_queue_max, message_bytes_max=65536
        )
    await node_a.start()
    node_b = P2PNode(make_config(1, allowed=range(3), peers=[address_of(node_a, 0)]))
    for channel in channels:
        inboxes[1, channel] = Inbox()
        node_b.register_channel(
            channel, inboxes[1, channel], send_queue_max=send_queue_max, message_bytes_max=65536
        )
    await node_b.start()
    await wait_until(lambda: bool(node_a.connected_keys() and node_b.connected_keys()))
    return node_a, node_b, inboxes


class RecordingTransport:
    """The GossipTransport a test double must provide: the connected peers (a list a test
    may change), every batch sent kept decoded, the registered receiver kept."""

    def __init__(self, peers: list[bytes]) -> None:
        self.peers = peers
        self.sent: list[tuple[bytes, list[bytes]]] = []
        self.on_message: Callable[[bytes, bytes], None] | None = None

    def register_channel(
        self,
        channel_id: int,
        on_message: Callable[[bytes, bytes], None],
        *,
        send_queue_max: int,
        message_bytes_max: int,
    ) -> None:
        self.on_message = on_message

    def send(self, peer_key: bytes, channel_id: int, payload: bytes) -> bool:
        self.sent.append((peer_key, msgspec.msgpack.decode(payload, type=list[bytes])))
        return True

    def connected_keys(self) -> list[bytes]:
        return list(self.peers)
