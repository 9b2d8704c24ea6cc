"""Loopback throughput of the encrypted channel: N messages of B bytes from one node to
another, both in this process (so one core does both ends).

    .venv/bin/python -m tests.p2p.p2p_throughput [count] [bytes]
    .venv/bin/python -m tests.p2p.p2p_throughput gossip [count]     # 250-byte txs via TxGossip

The sender respects backpressure: when send() returns False it yields until the queue drains.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from dataclasses import dataclass

import uvloop

from p2p.gossip import TxGossip
from p2p.manager import P2PNode
from tests.p2p.p2p_helpers import FAST_LIMITS, address_of, make_config, public_key, wait_until


@dataclass(frozen=True, slots=True)
class Throughput:
    messages: int
    seconds: float
    frames: int

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds


async def measure(*, count: int, message_bytes: int) -> Throughput:
    received = [0]

    def on_message(_peer: bytes, _payload: bytes) -> None:
        received[0] += 1

    # The per-peer inbound rate limit would drop most of a flood like this one: lift it.
    limits = dataclasses.replace(
        FAST_LIMITS,
        inbound_messages_per_s=1e12,
        inbound_burst_messages=1e12,
        inbound_bytes_per_s=1e12,
        inbound_burst_bytes=1e12,
    )
    receiver = P2PNode(make_config(0, allowed=range(2), limits=limits))
    receiver.register_channel(1, on_message, send_queue_max=10_000, message_bytes_max=65536)
    await receiver.start()
    sender = P2PNode(
        make_config(1, allowed=range(2), peers=[address_of(receiver, 0)], limits=limits)
    )
    sender.register_channel(1, on_message, send_queue_max=10_000, message_bytes_max=65536)
    await sender.start()
    try:
        await wait_until(lambda: sender.connected_keys() == [public_key(0)])
        payload = bytes(message_bytes)
        peer = public_key(0)
        started = time.perf_counter()
        sent = 0
        while sent < count:
            if sender.send(peer, 1, payload):
                sent += 1
            else:
                await asyncio.sleep(0)
        await wait_until(
            lambda: received[0] == count or receiver.stats.drops.total() > 0, timeout_s=120.0
        )
        assert receiver.stats.drops.total() == 0, receiver.stats.drops
        elapsed = time.perf_counter() - started
        return Throughput(count, elapsed, sender.stats.frames_sent[peer])
    finally:
        await sender.stop()
        await receiver.stop()


async def measure_gossip(*, count: int, tx_bytes: int = 250) -> Throughput:
    """Txs added on one node until all arrive, de-duplicated, at the other's callback."""
    received = [0]

    def on_txs(_peer: bytes, txs: list[bytes]) -> None:
        received[0] += len(txs)

    node_a = P2PNode(make_config(0, allowed=range(2)))
    gossip_a = TxGossip(node_a, channel_id=2, on_txs=on_txs)
    await node_a.start()
    node_b = P2PNode(make_config(1, allowed=range(2), peers=[address_of(node_a, 0)]))
    gossip_b = TxGossip(node_b, channel_id=2, on_txs=on_txs)
    await node_b.start()
    gossip_a.start()
    gossip_b.start()
    try:
        await wait_until(lambda: bool(node_a.connected_keys() and node_b.connected_keys()))
        txs = [i.to_bytes(8, "big") + bytes(tx_bytes - 8) for i in range(count)]
        started = time.perf_counter()
        for i, tx in enumerate(txs):
            assert gossip_a.add(tx)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # as the node would between RPC batches
        await wait_until(lambda: received[0] == count, timeout_s=120.0)
        elapsed = time.perf_counter() - started
        return Throughput(count, elapsed, gossip_a.stats.batches_sent)
    finally:
        await gossip_b.stop()
        await gossip_a.stop()
        await node_b.stop()
        await node_a.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "gossip":
        count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
        gossip = uvloop.run(measure_gossip(count=count))
        print(
            f"uvloop gossip: {gossip.messages} x 250 B txs in {gossip.seconds:.2f} s: "
            f"{gossip.messages_per_s:,.0f} tx/s in {gossip.frames} batches"
        )
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    message_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    result = uvloop.run(measure(count=count, message_bytes=message_bytes))
    loop_name = "uvloop"
    megabytes_per_s = result.messages_per_s * message_bytes / 1e6
    print(
        f"{loop_name}: {result.messages} x {message_bytes} B in {result.seconds:.2f} s: "
        f"{result.messages_per_s:,.0f} msg/s, {megabytes_per_s:.1f} MB/s payload, "
        f"{result.frames} frames ({result.messages / max(result.frames, 1):.0f} msg/frame)"
    )


if __name__ == "__main__":
    main()
