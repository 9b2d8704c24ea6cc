"""One authenticated, encrypted connection to one peer.

A `PeerConnection` owns two tasks:

- the writer drains the per-channel send queues into sealed frames of up to
  `coalesce_bytes_max` plaintext bytes (many small messages per encryption and per write;
  lower channel ids drain first within a frame), and sends a PING when told to;
- the reader reads one frame at a time (cap checked before the body), authenticates it,
  splits it into records and hands each record to its channel's callback.

and one timer, the deadline check, for the three liveness deadlines: nothing received for
`idle_timeout_s` (the peer is gone), one drain blocked for `write_timeout_s` (the peer
stopped reading), nothing sent for `keepalive_interval_s` (time for a PING). The loops
only note when a frame came in or went out, or a drain began; the timer fires at the
earliest deadline, acts on what is due and re-arms itself for the next one. A deadline per
read, per drain and per idle wait cost a timer armed and cancelled for every frame.

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
        # One queue per channel, in channel order: the writer drains lower ids first.
        self._queues: dict[int, deque[bytes]] = {
            channel_id: deque() for channel_id in sorted(channels)
        }
        self._stat_keys = {channel_id: (peer_key, channel_id) for channel_id in self._queues}
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._last_received = now  # when the last frame came in (the idle deadline)
        self._last_sent = now  # when the last frame went out (the keepalive deadline)
        self._drain_since: float | None = None  # a drain in progress (the write deadline)
        self._ping_due = False
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._closed = asyncio.Event()
        self._close_reason = ""
        self._strikes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0
        self._clock = clock
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
        self._arm_deadline_check()

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
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._writer.transport.abort()
        unsent = sum(len(queue) for queue in self._queues.values())
        if unsent:
            self._stats.drops["disconnected"] += unsent  # queued but never written
            for queue in self._queues.values():
                queue.clear()
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
            self._fail(exc)
        except (OSError, EOFError) as exc:
            log.info("peer %s: connection lost: %s", self.peer_key.hex()[:16], exc)
            self.close("connection_lost")

    def _fail(self, error: P2PError) -> None:
        log.warning("peer %s: %s (%s)", self.peer_key.hex()[:16], error, error.reason)
        self.close(error.reason)

    # --- deadlines ---

    def _arm_deadline_check(self) -> None:
        """Fire at the earliest deadline that is running."""
        limits = self._limits
        when = min(
            self._last_received + limits.idle_timeout_s,
            self._last_sent + limits.keepalive_interval_s,
        )
        if self._drain_since is not None:
            when = min(when, self._drain_since + limits.write_timeout_s)
        self._deadline_timer = self._loop.call_at(when, self._check_deadlines)

    def _check_deadlines(self) -> None:
        """The one timer (see the module docstring): drop a silent peer or one that stopped
        reading, ask the writer for a PING when nothing went out for a while, re-arm.
        Deadlines only move later between checks, so it never fires after one is due."""
        self._deadline_timer = None
        if self._closed.is_set():
            return
        limits = self._limits
        now = self._loop.time()
        if now - self._last_received >= limits.idle_timeout_s:
            self._fail(PeerTimeout(f"no frame within {limits.idle_timeout_s}s"))
            return
        drain_since = self._drain_since
        if drain_since is not None and now - drain_since >= limits.write_timeout_s:
            self._fail(PeerTimeout("peer stopped reading"))
            return
        if now - self._last_sent >= limits.keepalive_interval_s:
            self._ping_due = True
            self._last_sent = now  # the PING goes out next; re-arm from here
            self._wakeup.set()
        self._arm_deadline_check()

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
        queue = self._queues[channel_id]
        if len(queue) >= spec.send_queue_max:
            self._stats.drops["queue_full"] += 1
            return False
        queue.append(payload)
        self._wakeup.set()
        return True

    def queue_depths(self) -> dict[int, int]:
        return {channel_id: len(queue) for channel_id, queue in self._queues.items() if queue}

    def _take_batch(self) -> list[tuple[int, bytes]]:
        """Pop messages for one frame: at least one, then up to the coalescing byte cap.
        Counts what it takes (messages and bytes per channel) as sent."""
        budget = self._limits.coalesce_bytes_max
        records: list[tuple[int, bytes]] = []
        for channel_id, queue in self._queues.items():
            taken = taken_bytes = 0
            while queue:
                size = len(queue[0])
                if records and size + RECORD_HEADER_BYTES > budget:
                    break
                records.append((channel_id, queue.popleft()))
                budget -= size + RECORD_HEADER_BYTES
                taken += 1
                taken_bytes += size
            if taken:
                self._add_channel_totals(channel_id, taken, taken_bytes, sent=True)
            if queue:
                break  # the frame is full
        return records

    async def _write_loop(self) -> None:
        loop = self._loop
        writer = self._writer
        session = self._session
        while True:
            records = self._take_batch()
            if not records:
                if not self._ping_due:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                records = [(CONTROL_CHANNEL, PING)]
            self._ping_due = False  # any frame keeps the connection alive
            body = session.seal_buffer(encode_records(records))
            # Prefix and body handed over as two buffers: a frame carrying a block is
            # ~600 KB, and `prefix + body` copied it once more per peer (uvloop writes
            # both buffers in one vectored call).
            writer.writelines((LENGTH_PREFIX.pack(len(body)), body))
            stats = self._stats
            stats.frames_sent[self.peer_key] += 1
            stats.wire_bytes_sent[self.peer_key] += len(body) + LENGTH_PREFIX.size
            self._last_sent = self._drain_since = loop.time()
            await writer.drain()  # the deadline check drops a peer stuck here
            self._drain_since = None

    def _add_channel_totals(
        self, channel_id: int, message_count: int, byte_count: int, *, sent: bool
    ) -> None:
        """Fold one frame's totals for one channel into the counters (once per frame and
        channel, not per message: the Counter updates were the hot spot)."""
        stats = self._stats
        key = self._stat_keys[channel_id]
        if sent:
            stats.messages_sent[key] += message_count
            stats.bytes_sent[key] += byte_count
            self.messages_out += message_count
            self.bytes_out += byte_count
        else:
            stats.messages_received[key] += message_count
            stats.bytes_received[key] += byte_count
            self.messages_in += message_count
            self.bytes_in += byte_count

    # --- receiving ---

    async def _read_loop(self) -> None:
        limits = self._limits
        loop = self._loop
        reader = self._reader
        session = self._session
        stats = self._stats
        key = self.peer_key
        while True:
            body = await read_frame(reader, frame_bytes_max=limits.frame_bytes_max, timeout_s=None)
            self._last_received = loop.time()  # the deadline check reads it
            plaintext = session.open_buffer(body)
            stats.frames_received[key] += 1
            stats.wire_bytes_received[key] += len(body) + LENGTH_PREFIX.size
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
        if not accepted:
            return
        accepted = self._rate_limit(accepted)
        # Totals per channel, in one pass over runs of the same channel (a frame usually
        # carries one channel's messages).
        run_channel = -1
        run_count = run_bytes = 0
        for spec, payload in accepted:
            if spec.channel_id != run_channel:
                if run_count:
                    self._add_channel_totals(run_channel, run_count, run_bytes, sent=False)
                run_channel, run_count, run_bytes = spec.channel_id, 0, 0
            run_count += 1
            run_bytes += len(payload)
        if run_count:
            self._add_channel_totals(run_channel, run_count, run_bytes, sent=False)
        key = self.peer_key
        for spec, payload in accepted:
            spec.on_message(key, payload)

    def _rate_limit(
        self, accepted: list[tuple[ChannelSpec, bytes]]
    ) -> list[tuple[ChannelSpec, bytes]]:
        """Keep the longest prefix both token buckets can pay for; drop and count the rest."""
        now = self._clock()
        message_budget = self._message_bucket.available(now)
        byte_budget = self._byte_bucket.available(now)
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
