"""The fault proxy between two real P2PNodes: delay, partition and heal, connection drops."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from p2p.config import PeerAddress
from p2p.faultproxy import FaultProxy
from p2p.manager import P2PNode
from tests.p2p.p2p_helpers import FAST_LIMITS, Inbox, make_config, public_key, wait_until

pytestmark = pytest.mark.slow


class ProxiedPair:
    """Node 0 listens; node 1 reaches it only through the proxy."""

    def __init__(self) -> None:
        self.listener = P2PNode(make_config(0, allowed=range(2)))
        self.inbox = Inbox()
        self.listener.register_channel(1, self.inbox, send_queue_max=100, message_bytes_max=1024)
        self.proxy: FaultProxy | None = None
        self.dialler: P2PNode | None = None

    async def start(self) -> None:
        await self.listener.start()
        self.proxy = FaultProxy(
            target_host="127.0.0.1", target_port=self.listener.listen_port, rng=random.Random(3)
        )
        await self.proxy.start()
        peer = PeerAddress(public_key(0), "127.0.0.1", self.proxy.port)
        self.dialler = P2PNode(make_config(1, allowed=range(2), peers=[peer]))
        self.dialler.register_channel(1, Inbox(), send_queue_max=100, message_bytes_max=1024)
        await self.dialler.start()
        await self.wait_connected()

    async def wait_connected(self) -> None:
        """Both ends admitted the connection (they finish their handshakes separately)."""
        dialler = self.dialler
        assert dialler is not None
        await wait_until(
            lambda: (
                self.listener.connected_keys() == [public_key(1)]
                and dialler.connected_keys() == [public_key(0)]
            )
        )

    def send(self, payload: bytes) -> bool:
        assert self.dialler is not None
        return self.dialler.send(public_key(0), 1, payload)

    async def stop(self) -> None:
        assert self.dialler is not None
        assert self.proxy is not None
        await self.dialler.stop()
        await self.proxy.stop()
        await self.listener.stop()


@pytest.fixture
async def pair() -> AsyncIterator[ProxiedPair]:
    proxied = ProxiedPair()
    await proxied.start()
    yield proxied
    await proxied.stop()


async def test_proxy_forwards_and_counts_bytes(pair: ProxiedPair) -> None:
    assert pair.proxy is not None
    before = pair.proxy.stats.bytes_to_target
    assert pair.send(b"x" * 500)
    await wait_until(lambda: pair.inbox.payloads() == [b"x" * 500])
    assert pair.proxy.stats.bytes_to_target - before >= 500
    assert pair.proxy.stats.bytes_to_client > 0  # handshake and keepalives flow back


async def test_proxy_delay_holds_bytes_back_then_delivers_in_order(pair: ProxiedPair) -> None:
    assert pair.proxy is not None
    pair.proxy.set_delay(400, jitter_ms=100)
    for i in range(20):
        assert pair.send(b"msg %d" % i)
    await asyncio.sleep(0.1)  # well under the 400 ms minimum delay
    assert pair.inbox.payloads() == []
    await wait_until(lambda: len(pair.inbox.items) == 20)
    assert pair.inbox.payloads() == [b"msg %d" % i for i in range(20)]


async def test_short_partition_holds_traffic_and_heal_releases_it(pair: ProxiedPair) -> None:
    assert pair.proxy is not None
    pair.proxy.partition()
    forwarded = pair.proxy.stats.bytes_to_target
    assert pair.send(b"across the partition")
    await asyncio.sleep(0.3)
    assert pair.inbox.payloads() == []
    assert pair.proxy.stats.bytes_to_target == forwarded
    pair.proxy.heal()
    await wait_until(lambda: pair.inbox.payloads() == [b"across the partition"])
    assert pair.listener.stats.disconnections.total() == 0, "same connection survived"


async def test_long_partition_times_out_then_nodes_reconnect_after_heal(
    pair: ProxiedPair,
) -> None:
    assert pair.proxy is not None
    assert pair.dialler is not None
    pair.proxy.partition()
    await wait_until(lambda: pair.listener.connected_keys() == [], timeout_s=5.0)
    assert pair.listener.stats.disconnections["timeout"] == 1
    await asyncio.sleep(FAST_LIMITS.handshake_timeout_s)  # redials stall in the black hole
    assert pair.listener.connected_keys() == []
    pair.proxy.heal()
    await pair.wait_connected()
    assert pair.send(b"after heal")
    await wait_until(lambda: pair.inbox.payloads() == [b"after heal"])


async def test_drop_probability_kills_connections_and_they_come_back(pair: ProxiedPair) -> None:
    assert pair.proxy is not None
    pair.proxy.set_drop_probability(1.0)
    assert pair.send(b"doomed")
    await wait_until(lambda: pair.listener.connected_keys() == [])
    assert pair.proxy.stats.connections_dropped >= 1
    pair.proxy.set_drop_probability(0.0)
    await pair.wait_connected()
    assert pair.send(b"survivor")
    await wait_until(lambda: b"survivor" in pair.inbox.payloads())
