"""P2PNode: listens, dials persistent peers, keeps exactly one connection per peer, and
routes messages between numbered channels and peers.

Connection admission, in order: pending-handshake cap (R1) -> handshake with deadline
(identity checked against the allowed set before any payload) -> ban check -> duplicate
tie-break -> PeerConnection. When two connections to the same peer exist (both sides
dialled at once), both sides keep the one dialled by the lower public key, so they agree
without talking about it. A newer connection dialled by the same side replaces the older one,
which is likely stale (the peer restarted).

All bookkeeping runs on the event loop; callbacks (`on_message`, peer listeners) are called
on it and must not block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from p2p.backoff import BanList, backoff_delay_s
from p2p.config import (
    CHANNEL_ID_MAX,
    FRAME_OVERHEAD_BYTES,
    ChannelSpec,
    OnMessage,
    P2PConfig,
    PeerAddress,
)
from p2p.errors import P2PError, PeerTimeout
from p2p.handshake import Handshake, HandshakeResult, run_handshake
from p2p.peer import PeerConnection, PeerInfo
from p2p.stats import P2PStats

log = logging.getLogger(__name__)

PeerListener = Callable[[bytes, bool], None]  # (peer key, connected)


class P2PNode:
    def __init__(self, config: P2PConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.stats = P2PStats()
        self.public_key = bytes(config.signing_key.verify_key)
        self._limits = config.limits
        self._clock = clock
        self._channels: dict[int, ChannelSpec] = {}
        self._peers: dict[bytes, PeerConnection] = {}
        self._listeners: list[PeerListener] = []
        self._bans = BanList(base_s=config.limits.ban_base_s, max_s=config.limits.ban_max_s)
        self._pending: set[asyncio.StreamWriter] = set()
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._dial_tasks: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None
        self._stopping = False
        self._listen_port = 0

    # --- configuration ---

    def register_channel(
        self,
        channel_id: int,
        on_message: OnMessage,
        *,
        send_queue_max: int,
        message_bytes_max: int,
    ) -> None:
        """Declare a channel before start(). Inbound messages over the cap are dropped and
        counted as the peer's fault; outbound ones make send() return False."""
        assert 1 <= channel_id <= CHANNEL_ID_MAX, "channel 0 is reserved for p2p control"
        assert channel_id not in self._channels, f"channel {channel_id} registered twice"
        assert send_queue_max >= 1
        assert message_bytes_max + FRAME_OVERHEAD_BYTES <= self._limits.frame_bytes_max
        self._channels[channel_id] = ChannelSpec(
            channel_id, on_message, send_queue_max, message_bytes_max
        )

    def add_peer_listener(self, listener: PeerListener) -> None:
        """listener(peer_key, connected) on every connect and disconnect."""
        self._listeners.append(listener)

    @property
    def listen_port(self) -> int:
        return self._listen_port

    # --- lifecycle ---

    async def start(self) -> None:
        config = self.config
        if config.listen:
            self._server = await asyncio.start_server(
                self._on_inbound, host=config.listen_host, port=config.listen_port
            )
            self._listen_port = self._server.sockets[0].getsockname()[1]
            log.info("p2p listening on %s:%d", config.listen_host, self._listen_port)
        for peer in config.persistent_peers:
            self.add_persistent_peer(peer)

    def add_persistent_peer(self, peer: PeerAddress) -> None:
        """Keep a connection to `peer` from now on (dial, and redial with backoff)."""
        assert not self._stopping
        assert peer.public_key in self.config.allowed_keys, "persistent peer not allowed"
        task = asyncio.create_task(self._dial_loop(peer), name=f"p2p-dial-{peer.port}")
        self._dial_tasks.append(task)

    async def stop(self) -> None:
        """Stop listening and dialling, close every connection, wait for every task."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in self._dial_tasks:
            task.cancel()
        for writer in list(self._pending):
            writer.transport.abort()
        connections = list(self._peers.values())
        for connection in connections:
            connection.close("shutdown")
        await asyncio.gather(*self._dial_tasks, return_exceptions=True)
        await asyncio.gather(*self._handler_tasks, return_exceptions=True)
        await asyncio.gather(*(c.wait_closed() for c in connections))
        if self._server is not None:
            await self._server.wait_closed()

    # --- sending ---

    def send(self, peer_key: bytes, channel_id: int, payload: bytes) -> bool:
        """Queue `payload` for one peer. False when not connected, too large or queue full."""
        assert channel_id in self._channels, f"channel {channel_id} not registered"
        connection = self._peers.get(peer_key)
        if connection is None:
            self.stats.drops["not_connected"] += 1
            return False
        return connection.send(channel_id, payload)

    def broadcast(self, channel_id: int, payload: bytes, *, exclude: bytes | None = None) -> int:
        """Queue for every connected peer but `exclude`; returns how many accepted it."""
        accepted = 0
        for key in sorted(self._peers):
            if key != exclude and self._peers[key].send(channel_id, payload):
                accepted += 1
        return accepted

    def connected_keys(self) -> list[bytes]:
        return sorted(self._peers)

    def peers(self) -> list[PeerInfo]:
        return [self._peers[key].info() for key in sorted(self._peers)]

    # --- inbound ---

    def _is_allowed(self, key: bytes) -> bool:
        return key in self.config.allowed_keys

    def _reject(self, writer: asyncio.StreamWriter, reason: str) -> None:
        self.stats.rejected_connections[reason] += 1
        writer.transport.abort()

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.transport.abort()
            return
        if len(self._pending) >= self._limits.pending_handshakes_max:
            self._reject(writer, "too_many_pending")
            return
        inbound = sum(1 for c in self._peers.values() if c.direction == "inbound")
        if inbound >= self._limits.inbound_peers_max:
            self._reject(writer, "too_many_peers")
            return
        task = asyncio.current_task()
        assert task is not None
        self._handler_tasks.add(task)
        self._pending.add(writer)
        try:
            result = await self._handshake(reader, writer, expected_peer_key=None)
        except P2PError as exc:
            log.info("inbound handshake refused: %s (%s)", exc, exc.reason)
            self._reject(writer, exc.reason)
            return
        except OSError as exc:
            log.info("inbound handshake lost: %s", exc)
            self._reject(writer, "connection_lost")
            return
        finally:
            self._pending.discard(writer)
            self._handler_tasks.discard(task)
        self._admit(result, reader, writer, direction="inbound")

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        expected_peer_key: bytes | None,
    ) -> HandshakeResult:
        handshake = Handshake(
            signing_key=self.config.signing_key,
            chain_id=self.config.chain_id,
            is_allowed=self._is_allowed,
            expected_peer_key=expected_peer_key,
        )
        return await run_handshake(
            reader, writer, handshake, timeout_s=self._limits.handshake_timeout_s
        )

    # --- admission and bookkeeping ---

    def _dialled_by_lower_key(self, peer_key: bytes, direction: str) -> bool:
        dialler = self.public_key if direction == "outbound" else peer_key
        return dialler == min(self.public_key, peer_key)

    def _admit(
        self,
        result: HandshakeResult,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        direction: str,
    ) -> bool:
        key = result.peer_public_key
        if self._stopping:
            writer.transport.abort()
            return False
        if self._bans.remaining_s(key, now=self._clock()) > 0:
            self._reject(writer, "banned")
            return False
        existing = self._peers.get(key)
        if existing is not None:
            keep_existing = self._dialled_by_lower_key(
                key, existing.direction
            ) and not self._dialled_by_lower_key(key, direction)
            if keep_existing:
                self._reject(writer, "duplicate")
                return False
            existing.close("duplicate")
        peername = writer.get_extra_info("peername")
        address = f"{peername[0]}:{peername[1]}" if peername else "?"
        connection = PeerConnection(
            peer_key=key,
            session=result.session,
            reader=reader,
            writer=writer,
            direction=direction,
            address=address,
            channels=self._channels,
            limits=self._limits,
            stats=self.stats,
            on_closed=self._on_closed,
        )
        self._peers[key] = connection
        connection.start()
        self.stats.connections_established[direction] += 1
        log.info("peer %s connected (%s, %s)", key.hex()[:16], direction, address)
        for listener in self._listeners:
            listener(key, True)
        return True

    def _on_closed(self, connection: PeerConnection, reason: str) -> None:
        key = connection.peer_key
        self.stats.disconnections[reason] += 1
        if connection.misbehaved:
            self.stats.rejected_connections[reason] += 1
            duration = self._bans.ban(key, now=self._clock())
            log.warning("peer %s banned for %.1fs: %s", key.hex()[:16], duration, reason)
        if self._peers.get(key) is connection:
            del self._peers[key]
            log.info("peer %s disconnected: %s", key.hex()[:16], reason)
            for listener in self._listeners:
                listener(key, False)

    # --- outbound ---

    async def _dial_loop(self, peer: PeerAddress) -> None:
        """Keep one connection to `peer`: dial, wait for it to end, back off, repeat."""
        limits = self._limits
        attempt = 0
        while not self._stopping:
            connection = self._peers.get(peer.public_key)
            if connection is not None:
                await connection.wait_closed()
                attempt = 1  # a short, jittered pause so both sides do not redial in step
            else:
                ban_s = self._bans.remaining_s(peer.public_key, now=self._clock())
                if ban_s > 0:
                    await asyncio.sleep(ban_s)
                    continue
                if await self._dial_once(peer):
                    attempt = 0
                    continue
                attempt += 1  # unreachable, refused, or admitted nothing (duplicate, ban)
            if attempt:
                await asyncio.sleep(
                    backoff_delay_s(
                        attempt=attempt,
                        base_s=limits.backoff_base_s,
                        max_s=limits.backoff_max_s,
                        rng=self.config.rng,
                    )
                )

    async def _dial_once(self, peer: PeerAddress) -> bool:
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(self._limits.dial_timeout_s):
                    reader, writer = await asyncio.open_connection(peer.host, peer.port)
            except TimeoutError:
                raise PeerTimeout("dial timed out") from None
            result = await self._handshake(reader, writer, expected_peer_key=peer.public_key)
        except (P2PError, OSError) as exc:
            reason = exc.reason if isinstance(exc, P2PError) else "unreachable"
            self.stats.dial_failures[reason] += 1
            log.debug("dial %s:%d failed: %s (%s)", peer.host, peer.port, exc, reason)
            if writer is not None:
                writer.transport.abort()
            return False
        return self._admit(result, reader, writer, direction="outbound")
