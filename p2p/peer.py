"""One authenticated, encrypted connection to one peer.

A `PeerConnection` owns two tasks:

- the writer drains the per-channel send queues into sealed frames of up to
  `coalesce_bytes_max` plaintext bytes (many small messages per encryption and per write;
  lower channel ids drain first within a frame), and sends a PING when idle;
- the reader reads one frame at a time (cap checked before the body), authenticates it,
  splits it into records and hands each record to its channel's callback.

Memory per peer is bounded: each channel queue holds at most `send_queue_max` messages of at
most `message_bytes_max` bytes, and the reader holds one frame of at most `frame_bytes_max`.
Any P2PError or OSError ends the connection; the manager learns why through `on_closed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from p2p.config import ChannelSpec, P2PLimits
from p2p.errors import P2PError, PeerClosed, PeerTimeout
from p2p.framing import LENGTH_PREFIX, read_frame
from p2p.ratelimit import TokenBucket
from p2p.secure import (
    CONTROL_CHANNEL,
    RECORD_HEADER_BYTES,
    SecureSession,
    decode_records,
    encode_records,
)
from p2p.stats import P2PStats

log = logging.getLogger(__name__)

PING = b"\x01"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    public_key: bytes
    address: str
    direction: str  # "inbound" or "outbound"
    connected_since: float  # wall-clock seconds, for display only
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int
    queue_depths: dict[int, int]


class PeerConnection:
    def __init__(
        self,
        *,
        peer_key: bytes,
        session: SecureSession,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        address: str,
        channels: Mapping[int, ChannelSpec],
        limits: P2PLimits,
        stats: P2PStats,
        on_closed: Callable[[PeerConnection, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer_key = peer_key
        self.direction = direction
        self.address = address
        self.connected_since = time.time()
        self._session = session
        self._reader = reader
        self._writer = writer
        self._channels = channels
        self._limits = limits
        self._stats = stats
        self._on_closed = on_closed
        self._queues: dict[int, deque[bytes]] = {}
        self._wakeup = asyncio.Event()
        self._closed = asyncio.Event()
        self._close_reason = ""
        self._strikes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0
        self._message_bucket = TokenBucket(
            rate_per_s=limits.inbound_messages_per_s,
            burst=limits.inbound_burst_messages,
            clock=clock,
        )
        self._byte_bucket = TokenBucket(
            rate_per_s=limits.inbound_bytes_per_s, burst=limits.inbound_burst_bytes, clock=clock
        )

    # --- lifecycle ---

    def start(self) -> None:
        assert not self._tasks, "started twice"
        tag = self.peer_key.hex()[:8]
        self._tasks = [
            asyncio.create_task(self._run(self._read_loop), name=f"p2p-read-{tag}"),
            asyncio.create_task(self._run(self._write_loop), name=f"p2p-write-{tag}"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """A loop that died of anything but a peer's fault is a bug (ours, or a channel
        callback's): say so loudly and drop this connection rather than leave it half-dead."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.critical(
                "peer %s: %s crashed", self.peer_key.hex()[:16], task.get_name(), exc_info=error
            )
            self.close("internal_error")

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_reason(self) -> str:
        return self._close_reason

    @property
    def misbehaved(self) -> bool:
        return self._close_reason in _MISBEHAVIOUR

    def close(self, reason: str) -> None:
        """Idempotent: cancel both tasks, abort the socket, tell the manager once."""
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._writer.transport.abort()
        unsent = sum(len(queue) for queue in self._queues.values())
        if unsent:
            self._stats.drops["disconnected"] += unsent  # queued but never written
            self._queues.clear()
        self._on_closed(self, reason)

    async def wait_closed(self) -> None:
        await self._closed.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one loop; a peer's fault or a dead socket ends the connection, not the node."""
        try:
            await loop()
        except PeerClosed as exc:
            log.info("peer %s: closed", self.peer_key.hex()[:16])
            self.close(exc.reason)
        except P2PError as exc:
            log.warning("peer %s: %s (%s)", self.peer_key.hex()[:16], exc, exc.reason)
            self.close(exc.reason)
        except (OSError, EOFError) as exc:
            log.info("peer %s: connection lost: %s", self.peer_key.hex()[:16], exc)
            self.close("connection_lost")

    # --- sending ---

    def send(self, channel_id: int, payload: bytes) -> bool:
        """Queue one message. False (and a counted drop) if closed, too large or full."""
        spec = self._channels.get(channel_id)
        assert spec is not None, f"channel {channel_id} not registered"
        if self._closed.is_set():
            self._stats.drops["not_connected"] += 1
            return False
        if len(payload) > spec.message_bytes_max:
            self._stats.drops["too_large"] += 1
            return False
        queue = self._queues.get(channel_id)
        if queue is None:
            queue = self._queues[channel_id] = deque()
        if len(queue) >= spec.send_queue_max:
            self._stats.drops["queue_full"] += 1
            return False
        queue.append(payload)
        self._wakeup.set()
        return True

    def queue_depths(self) -> dict[int, int]:
        return {channel_id: len(queue) for channel_id, queue in sorted(self._queues.items())}

    def _take_batch(self) -> list[tuple[int, bytes]]:
        """Pop messages for one frame: at least one, then up to the coalescing byte cap."""
        budget = self._limits.coalesce_bytes_max
        records: list[tuple[int, bytes]] = []
        for channel_id in sorted(self._queues):
            queue = self._queues[channel_id]
            while queue:
                size = len(queue[0]) + RECORD_HEADER_BYTES
                if records and size > budget:
                    return records
                records.append((channel_id, queue.popleft()))
                budget -= size
        return records

    async def _write_loop(self) -> None:
        limits = self._limits
        while True:
            records = self._take_batch()
            if not records:
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(limits.keepalive_interval_s):
                        await self._wakeup.wait()
                    continue
                except TimeoutError:
                    records = [(CONTROL_CHANNEL, PING)]
            body = self._session.seal(encode_records(records))
            # Prefix and body handed over as two buffers: a frame carrying a block is
            # ~600 KB, and `prefix + body` copied it once more per peer (uvloop writes
            # both buffers in one vectored call).
            self._writer.writelines((LENGTH_PREFIX.pack(len(body)), body))
            self._count_sent(records, len(body))
            try:
                async with asyncio.timeout(limits.write_timeout_s):
                    await self._writer.drain()
            except TimeoutError:
                raise PeerTimeout("peer stopped reading") from None

    def _count_sent(self, records: list[tuple[int, bytes]], body_bytes: int) -> None:
        per_channel: dict[int, list[int]] = {}  # channel -> [messages, bytes]
        for channel_id, payload in records:
            totals = per_channel.get(channel_id)
            if totals is None:
                totals = per_channel[channel_id] = [0, 0]
            totals[0] += 1
            totals[1] += len(payload)
        per_channel.pop(CONTROL_CHANNEL, None)
        self._add_channel_totals(per_channel, sent=True)
        self._stats.frames_sent[self.peer_key] += 1
        self._stats.wire_bytes_sent[self.peer_key] += body_bytes + LENGTH_PREFIX.size

    def _add_channel_totals(self, per_channel: dict[int, list[int]], *, sent: bool) -> None:
        """Fold one frame's per-channel totals into the counters (once per frame, not per
        message: the Counter updates were the hot spot)."""
        stats = self._stats
        messages = stats.messages_sent if sent else stats.messages_received
        byte_counter = stats.bytes_sent if sent else stats.bytes_received
        for channel_id, (message_count, byte_count) in per_channel.items():
            messages[self.peer_key, channel_id] += message_count
            byte_counter[self.peer_key, channel_id] += byte_count
            if sent:
                self.messages_out += message_count
                self.bytes_out += byte_count
            else:
                self.messages_in += message_count
                self.bytes_in += byte_count

    # --- receiving ---

    async def _read_loop(self) -> None:
        limits = self._limits
        while True:
            body = await read_frame(
                self._reader,
                frame_bytes_max=limits.frame_bytes_max,
                timeout_s=limits.idle_timeout_s,
            )
            plaintext = self._session.open(body)
            self._stats.frames_received[self.peer_key] += 1
            self._stats.wire_bytes_received[self.peer_key] += len(body) + LENGTH_PREFIX.size
            records = decode_records(plaintext, records_max=limits.records_per_frame_max)
            self._dispatch(records)
            if self._closed.is_set():
                return

    def _dispatch(self, records: list[tuple[int, bytes]]) -> None:
        """Check each record against its channel, charge the frame's accepted messages to
        the rate limiter in one go, then deliver them in order."""
        accepted: list[tuple[ChannelSpec, bytes]] = []
        channels = self._channels
        for channel_id, payload in records:
            if channel_id == CONTROL_CHANNEL:
                continue  # PING: receiving it already reset the idle deadline
            spec = channels.get(channel_id)
            if spec is None or len(payload) > spec.message_bytes_max:
                self._strike("unknown_channel" if spec is None else "too_large_inbound")
                if self._closed.is_set():
                    return
                continue
            accepted.append((spec, payload))
        accepted = self._rate_limit(accepted)
        per_channel: dict[int, list[int]] = {}
        for spec, payload in accepted:
            totals = per_channel.get(spec.channel_id)
            if totals is None:
                totals = per_channel[spec.channel_id] = [0, 0]
            totals[0] += 1
            totals[1] += len(payload)
        self._add_channel_totals(per_channel, sent=False)
        key = self.peer_key
        for spec, payload in accepted:
            spec.on_message(key, payload)

    def _rate_limit(
        self, accepted: list[tuple[ChannelSpec, bytes]]
    ) -> list[tuple[ChannelSpec, bytes]]:
        """Keep the longest prefix both token buckets can pay for; drop and count the rest."""
        message_budget = self._message_bucket.available()
        byte_budget = self._byte_bucket.available()
        kept = 0
        kept_bytes = 0
        for _spec, payload in accepted:
            if kept + 1 > message_budget or kept_bytes + len(payload) > byte_budget:
                break
            kept += 1
            kept_bytes += len(payload)
        self._message_bucket.consume(kept)
        self._byte_bucket.consume(kept_bytes)
        if kept < len(accepted):
            self._stats.drops["rate_limited"] += len(accepted) - kept
            return accepted[:kept]
        return accepted

    def _strike(self, reason: str) -> None:
        """Count an invalid message; too many and the peer is disconnected as misbehaving."""
        self._stats.drops[reason] += 1
        self._strikes += 1
        if self._strikes >= self._limits.invalid_messages_max:
            log.warning("peer %s: %d invalid messages", self.peer_key.hex()[:16], self._strikes)
            self.close("misbehaving")

    def info(self) -> PeerInfo:
        return PeerInfo(
            public_key=self.peer_key,
            address=self.address,
            direction=self.direction,
            connected_since=self.connected_since,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            queue_depths=self.queue_depths(),
        )


# Close reasons that mean the peer broke the protocol (not just went away): the manager
# bans such a peer for a while, with a ban that doubles on each repeat.
_MISBEHAVIOUR = frozenset({"misbehaving", "bad_mac", "bad_frame", "oversized_frame"})
