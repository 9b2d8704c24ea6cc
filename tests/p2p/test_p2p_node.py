"""P2PNode over real loopback sockets: handshake, channels, limits, tie-break, reconnect.

Attackers are raw clients built from the same pure Handshake, so they can do exactly what an
authenticated-but-hostile peer could: send junk, replay, tamper, flood.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

import pytest

from p2p.framing import LENGTH_PREFIX, encode_frame
from p2p.handshake import Handshake, run_handshake
from p2p.manager import P2PNode
from p2p.secure import SecureSession, encode_records
from tests.p2p.p2p_helpers import (
    CHAIN_ID,
    FAST_LIMITS,
    Inbox,
    address_of,
    connected_pair,
    make_config,
    public_key,
    signing_key,
    wait_until,
)
from tests.p2p.p2p_throughput import measure

pytestmark = pytest.mark.slow


async def raw_peer(
    port: int, key_index: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, SecureSession]:
    """Handshake as `key_index` without any of the node's policy (a hostile client)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    handshake = Handshake(
        signing_key=signing_key(key_index), chain_id=CHAIN_ID, is_allowed=lambda _key: True
    )
    result = await run_handshake(reader, writer, handshake, timeout_s=2.0)
    return reader, writer, result.session


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the node closed our socket (EOF or reset), reading what it still sends."""
    try:
        async with asyncio.timeout(3.0):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    return True


async def listening_node(index: int = 0, **limit_overrides: Any) -> tuple[P2PNode, Inbox]:
    limits = dataclasses.replace(FAST_LIMITS, **limit_overrides)
    node = P2PNode(make_config(index, allowed=range(3), limits=limits))
    inbox = Inbox()
    node.register_channel(1, inbox, send_queue_max=1000, message_bytes_max=65536)
    await node.start()
    return node, inbox


async def test_two_nodes_exchange_messages_on_channels_both_ways() -> None:
    node_a, node_b, inboxes = await connected_pair()
    try:
        assert node_b.send(public_key(0), 1, b"b-to-a on 1")
        assert node_b.send(public_key(0), 2, b"b-to-a on 2")
        assert node_a.broadcast(1, b"a-to-all on 1") == 1
        assert node_a.send(public_key(1), 2, b"a-to-b on 2")
        await wait_until(lambda: len(inboxes[0, 2].items) == 1 and len(inboxes[1, 2].items) == 1)
        await wait_until(lambda: len(inboxes[0, 1].items) == 1 and len(inboxes[1, 1].items) == 1)
        assert inboxes[0, 1].items == [(public_key(1), b"b-to-a on 1")]
        assert inboxes[0, 2].items == [(public_key(1), b"b-to-a on 2")]
        assert inboxes[1, 1].items == [(public_key(0), b"a-to-all on 1")]
        assert inboxes[1, 2].items == [(public_key(0), b"a-to-b on 2")]
        info_b = node_a.peers()[0]
        assert info_b.public_key == public_key(1)
        assert info_b.direction == "inbound"
        assert info_b.messages_in == 2
        assert info_b.messages_out == 2
        assert node_a.stats.messages_received[public_key(1), 1] == 1
        assert node_a.stats.bytes_sent[public_key(1), 2] == len(b"a-to-b on 2")
    finally:
        await node_b.stop()
        await node_a.stop()


async def test_many_small_messages_are_coalesced_into_few_frames() -> None:
    node_a, node_b, inboxes = await connected_pair()
    try:
        frames_before = node_b.stats.frames_sent[public_key(0)]
        for i in range(500):
            assert node_b.send(public_key(0), 1, i.to_bytes(4, "big") * 75)
        await wait_until(lambda: len(inboxes[0, 1].items) == 500)
        assert inboxes[0, 1].payloads() == [i.to_bytes(4, "big") * 75 for i in range(500)]
        frames = node_b.stats.frames_sent[public_key(0)] - frames_before
        assert frames <= 10, f"{frames} frames for 500 x 300 B"
    finally:
        await node_b.stop()
        await node_a.stop()


async def test_unknown_key_is_refused_before_any_payload_and_counted() -> None:
    node, inbox = await listening_node()
    try:
        reader, writer, session = await raw_peer(node.listen_port, key_index=7)
        writer.write(encode_frame(session.seal(encode_records([(1, b"smuggled")]))))
        assert await closed_by_peer(reader)
        writer.close()
        assert node.stats.rejected_connections["unknown_key"] == 1
        assert inbox.items == []
        assert node.connected_keys() == []
    finally:
        await node.stop()


async def test_garbage_instead_of_handshake_is_refused_and_listener_survives() -> None:
    node, inbox = await listening_node()
    try:
        for garbage in (os.urandom(38), b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00\x00\x26" + bytes(38)):
            reader, writer = await asyncio.open_connection("127.0.0.1", node.listen_port)
            writer.write(garbage)
            assert await closed_by_peer(reader)
            writer.close()
        assert sum(node.stats.rejected_connections.values()) == 3
        _reader, writer, session = await raw_peer(node.listen_port, key_index=2)
        writer.write(encode_frame(session.seal(encode_records([(1, b"still works")]))))
        await wait_until(lambda: inbox.payloads() == [b"still works"])
        writer.close()
    finally:
        await node.stop()


async def test_oversized_length_prefix_closes_connection_and_is_counted() -> None:
    node, _inbox = await listening_node()
    try:
        reader, writer, _session = await raw_peer(node.listen_port, key_index=2)
        await wait_until(lambda: node.connected_keys() == [public_key(2)])
        writer.write(LENGTH_PREFIX.pack(2**31))
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: node.connected_keys() == [])
        assert node.stats.disconnections["oversized_frame"] == 1
        assert node.stats.rejected_connections["oversized_frame"] == 1
        # Before the handshake too: a huge prefix in place of HELLO.
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen_port)
        writer.write(LENGTH_PREFIX.pack(2**31))
        assert await closed_by_peer(reader)
        writer.close()
        assert node.stats.rejected_connections["oversized_frame"] == 2
    finally:
        await node.stop()


@pytest.mark.parametrize("attack", ["tamper", "replay", "reorder"])
async def test_altered_replayed_or_reordered_frame_ends_connection(attack: str) -> None:
    node, inbox = await listening_node()
    try:
        reader, writer, session = await raw_peer(node.listen_port, key_index=2)
        first = encode_frame(session.seal(encode_records([(1, b"first")])))
        second = encode_frame(session.seal(encode_records([(1, b"second")])))
        if attack == "tamper":
            flipped = bytearray(first)
            flipped[-1] ^= 0x01
            writer.write(bytes(flipped))
        elif attack == "replay":
            writer.write(first + first)
        else:
            writer.write(second + first)
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: node.connected_keys() == [])
        assert node.stats.disconnections["bad_mac"] == 1
        assert inbox.payloads() == ([b"first"] if attack == "replay" else [])
        # The peer is backed off: its next connection is refused during the ban.
        reader, writer, _ = await raw_peer(node.listen_port, key_index=2)
        assert await closed_by_peer(reader)
        writer.close()
        assert node.stats.rejected_connections["banned"] == 1
    finally:
        await node.stop()


async def test_simultaneous_dial_yields_exactly_one_connection() -> None:
    limits = FAST_LIMITS
    node_a = P2PNode(make_config(0, allowed=range(2), limits=limits))
    node_b = P2PNode(make_config(1, allowed=range(2), limits=limits))
    inbox_a, inbox_b = Inbox(), Inbox()
    node_a.register_channel(1, inbox_a, send_queue_max=100, message_bytes_max=1024)
    node_b.register_channel(1, inbox_b, send_queue_max=100, message_bytes_max=1024)
    await node_a.start()
    await node_b.start()
    # Now that both ports are known, make each dial the other at the same moment.
    node_a.add_persistent_peer(address_of(node_b, 1))
    node_b.add_persistent_peer(address_of(node_a, 0))
    try:
        await wait_until(lambda: bool(node_a.connected_keys() and node_b.connected_keys()))
        await asyncio.sleep(0.5)  # let any duplicate be resolved
        assert len(node_a.peers()) == 1
        assert len(node_b.peers()) == 1
        # Both kept the connection dialled by the lower key.
        lower_is_a = public_key(0) < public_key(1)
        assert node_a.peers()[0].direction == ("outbound" if lower_is_a else "inbound")
        assert node_b.peers()[0].direction == ("inbound" if lower_is_a else "outbound")
        assert node_a.send(public_key(1), 1, b"hello b")
        assert node_b.send(public_key(0), 1, b"hello a")
        await wait_until(lambda: inbox_a.payloads() == [b"hello a"])
        await wait_until(lambda: inbox_b.payloads() == [b"hello b"])
    finally:
        await node_a.stop()
        await node_b.stop()


async def test_reconnects_with_backoff_after_peer_restarts() -> None:
    node_a, node_b, _inboxes = await connected_pair()
    port = node_a.listen_port
    events: list[tuple[bytes, bool]] = []
    node_b.add_peer_listener(lambda key, up: events.append((key, up)))
    try:
        await node_a.stop()
        await wait_until(lambda: node_b.connected_keys() == [])
        await asyncio.sleep(0.3)  # B dials a closed port a few times, backing off
        assert node_b.stats.dial_failures["unreachable"] >= 1
        restarted = P2PNode(make_config(0, allowed=range(3), listen_port=port))
        inbox = Inbox()
        restarted.register_channel(1, inbox, send_queue_max=10, message_bytes_max=1024)
        restarted.register_channel(2, Inbox(), send_queue_max=10, message_bytes_max=1024)
        await restarted.start()
        try:
            await wait_until(lambda: node_b.connected_keys() == [public_key(0)])
            assert node_b.send(public_key(0), 1, b"after restart")
            await wait_until(lambda: inbox.payloads() == [b"after restart"])
            assert events == [(public_key(0), False), (public_key(0), True)]
        finally:
            await restarted.stop()
    finally:
        await node_b.stop()


async def test_full_send_queue_returns_false_and_counts_the_drop() -> None:
    node_a, node_b, inboxes = await connected_pair(send_queue_max=5)
    try:
        results = [node_b.send(public_key(0), 1, bytes([i])) for i in range(7)]
        assert results == [True] * 5 + [False] * 2
        assert node_b.stats.drops["queue_full"] == 2
        assert not node_b.send(public_key(0), 1, bytes(65537))
        assert node_b.stats.drops["too_large"] == 1
        assert not node_b.send(public_key(2), 1, b"nobody")
        assert node_b.stats.drops["not_connected"] == 1
        await wait_until(lambda: len(inboxes[0, 1].items) == 5)
        assert inboxes[0, 1].payloads() == [bytes([i]) for i in range(5)]
    finally:
        await node_b.stop()
        await node_a.stop()


async def test_message_flood_is_rate_limited_and_other_peer_still_delivers() -> None:
    node, inbox = await listening_node(inbound_messages_per_s=200, inbound_burst_messages=200)
    honest = P2PNode(make_config(1, allowed=range(3), peers=[address_of(node, 0)]))
    honest.register_channel(1, Inbox(), send_queue_max=1000, message_bytes_max=65536)
    await honest.start()
    try:
        _reader, writer, session = await raw_peer(node.listen_port, key_index=2)
        for _ in range(50):
            frame = encode_records([(1, b"junk" * 10)] * 100)
            writer.write(encode_frame(session.seal(frame)))
        await writer.drain()
        await wait_until(lambda: honest.connected_keys() == [public_key(0)])
        for i in range(50):
            assert honest.send(public_key(0), 1, b"honest %d" % i)
        await wait_until(lambda: node.stats.drops["rate_limited"] > 0)
        await wait_until(lambda: sum(k == public_key(1) for k, _ in inbox.items) == 50)
        flood_delivered = sum(1 for k, _ in inbox.items if k == public_key(2))
        assert flood_delivered < 2500, "the token bucket let most of the flood through"
        assert flood_delivered + node.stats.drops["rate_limited"] == 5000
        writer.close()
    finally:
        await honest.stop()
        await node.stop()


async def test_repeated_invalid_messages_disconnect_and_ban_the_peer() -> None:
    node, _inbox = await listening_node(invalid_messages_max=10)
    try:
        reader, writer, session = await raw_peer(node.listen_port, key_index=2)
        writer.write(encode_frame(session.seal(encode_records([(99, b"no such channel")] * 20))))
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: node.connected_keys() == [])
        assert node.stats.disconnections["misbehaving"] == 1
        assert node.stats.drops["unknown_channel"] == 10
        # While banned, even a correct handshake from that key is refused.
        reader, writer, _ = await raw_peer(node.listen_port, key_index=2)
        assert await closed_by_peer(reader)
        writer.close()
        assert node.stats.rejected_connections["banned"] == 1
    finally:
        await node.stop()


async def test_silent_peer_is_dropped_after_idle_timeout() -> None:
    node, _ = await listening_node(idle_timeout_s=0.5, keepalive_interval_s=0.2)
    try:
        reader, writer, _ = await raw_peer(node.listen_port, key_index=2)
        await wait_until(lambda: node.connected_keys() == [public_key(2)])
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: node.stats.disconnections["timeout"] == 1)
    finally:
        await node.stop()


async def test_peer_that_stops_reading_is_dropped_after_write_timeout() -> None:
    node, _ = await listening_node(
        idle_timeout_s=30.0, write_timeout_s=0.5, keepalive_interval_s=0.2
    )
    loop = asyncio.get_running_loop()
    try:
        _reader, writer, session = await raw_peer(node.listen_port, key_index=2)
        await wait_until(lambda: node.connected_keys() == [public_key(2)])

        async def ping_but_never_read() -> None:  # the idle deadline never fires
            while True:
                writer.write(encode_frame(session.seal(encode_records([(0, b"\x01")]))))
                await asyncio.sleep(0.1)

        pinger = asyncio.create_task(ping_but_never_read())
        started = loop.time()
        try:
            while node.stats.disconnections["timeout"] == 0:
                node.send(public_key(2), 1, bytes(60_000))  # until the socket buffers fill
                await asyncio.sleep(0.001)
                assert loop.time() - started < 15, "a peer that stopped reading was kept"
        finally:
            pinger.cancel()
        assert node.connected_keys() == []
        writer.close()
    finally:
        await node.stop()


async def test_keepalive_holds_an_idle_connection_open() -> None:
    node_a, node_b, _ = await connected_pair()
    try:
        await asyncio.sleep(FAST_LIMITS.idle_timeout_s * 1.5)
        assert node_a.connected_keys() == [public_key(1)]
        assert node_b.connected_keys() == [public_key(0)]
    finally:
        await node_b.stop()
        await node_a.stop()


async def test_connection_flood_is_capped_and_honest_peer_still_connects() -> None:
    node, inbox = await listening_node(pending_handshakes_max=2, handshake_timeout_s=0.5)
    sockets = []
    try:
        for _ in range(6):
            sockets.append(await asyncio.open_connection("127.0.0.1", node.listen_port))
        await wait_until(lambda: node.stats.rejected_connections["too_many_pending"] == 4)
        await wait_until(lambda: node.stats.rejected_connections["timeout"] == 2)
        _reader, writer, session = await raw_peer(node.listen_port, key_index=1)
        writer.write(encode_frame(session.seal(encode_records([(1, b"honest")]))))
        await wait_until(lambda: inbox.payloads() == [b"honest"])
        writer.close()
    finally:
        for _reader, flood_writer in sockets:
            flood_writer.close()
        await node.stop()


async def test_dialling_own_address_is_refused() -> None:
    node, _ = await listening_node()
    try:
        node.add_persistent_peer(address_of(node, 0))
        await wait_until(lambda: node.stats.rejected_connections["self"] >= 1)
        assert node.connected_keys() == []
    finally:
        await node.stop()


async def test_throughput_harness_delivers_every_message_without_drops() -> None:
    """The loopback benchmark (docs/P2P.md) on a small count: correctness, not speed."""
    result = await measure(count=3000, message_bytes=300)
    assert result.messages == 3000
    assert result.frames < 3000, "messages were not coalesced"


async def test_a_crashing_channel_callback_drops_only_that_connection() -> None:
    """A callback bug is logged as critical and ends that peer's connection; the node and
    its listener go on (the peer redials)."""

    def explode(_peer: bytes, _payload: bytes) -> None:
        raise RuntimeError("bug in a channel callback")

    node_a, inbox = await listening_node()
    node_a.register_channel(2, explode, send_queue_max=10, message_bytes_max=1024)
    node_b = P2PNode(make_config(1, allowed=range(3), peers=[address_of(node_a, 0)]))
    node_b.register_channel(1, Inbox(), send_queue_max=10, message_bytes_max=1024)
    node_b.register_channel(2, Inbox(), send_queue_max=10, message_bytes_max=1024)
    await node_b.start()
    try:
        await wait_until(lambda: node_b.connected_keys() == [public_key(0)])
        assert node_b.send(public_key(0), 2, b"boom")
        await wait_until(lambda: node_a.stats.disconnections["internal_error"] == 1)
        await wait_until(lambda: node_b.stats.connections_established["outbound"] == 2)
        assert node_b.send(public_key(0), 1, b"after")
        await wait_until(lambda: inbox.payloads() == [b"after"])
    finally:
        await node_b.stop()
        await node_a.stop()
