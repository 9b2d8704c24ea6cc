"""Configuration and limits for a P2PNode. Every number has a unit and a reason, and the
relations between them are asserted when the limits are built (STYLE 3.6)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from p2p.framing import LENGTH_PREFIX_BYTES
from p2p.handshake import PUBLIC_KEY_BYTES
from p2p.secure import MAC_BYTES, RECORD_HEADER_BYTES

OnMessage = Callable[[bytes, bytes], None]
CHANNEL_ID_MAX = 255
FRAME_OVERHEAD_BYTES = LENGTH_PREFIX_BYTES + MAC_BYTES + RECORD_HEADER_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class P2PLimits:
    frame_bytes_max: int = 2 * 1024 * 1024  # sealed frame body; checked before reading it
    coalesce_bytes_max: int = 64 * 1024  # writer packs messages into frames up to this
    records_per_frame_max: int = 10_000  # work bound per received frame
    handshake_timeout_s: float = 5.0
    dial_timeout_s: float = 3.0
    pending_handshakes_max: int = 32  # R1: connection flood costs at most this many
    inbound_peers_max: int = 64
    keepalive_interval_s: float = 2.0  # a PING when nothing else was sent this long
    idle_timeout_s: float = 10.0  # nothing received this long: the peer is gone
    write_timeout_s: float = 10.0  # a peer that stops reading is dropped
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0
    inbound_messages_per_s: float = 20_000.0  # R3 per-peer token bucket (messages)
    inbound_burst_messages: float = 40_000.0
    inbound_bytes_per_s: float = 32.0 * 1024 * 1024  # R3 per-peer token bucket (bytes)
    inbound_burst_bytes: float = 64.0 * 1024 * 1024
    invalid_messages_max: int = 100  # strikes before the peer is disconnected and banned
    ban_base_s: float = 1.0  # first ban after misbehaviour; doubles per repeat
    ban_max_s: float = 60.0

    def __post_init__(self) -> None:
        assert self.coalesce_bytes_max + FRAME_OVERHEAD_BYTES <= self.frame_bytes_max
        assert self.keepalive_interval_s < self.idle_timeout_s
        # A peer's one deadline timer fires at least every keepalive interval, which is
        # what lets a drain that starts between two firings still be timed out exactly.
        assert self.keepalive_interval_s <= self.write_timeout_s
        assert self.backoff_base_s <= self.backoff_max_s
        assert self.ban_base_s <= self.ban_max_s
        assert self.pending_handshakes_max >= 1
        assert self.inbound_peers_max >= 1


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A peer to keep connected: its raw 32-byte Ed25519 key and where to dial it."""

    public_key: bytes
    host: str
    port: int

    def __post_init__(self) -> None:
        assert len(self.public_key) == PUBLIC_KEY_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class P2PConfig:
    chain_id: str
    signing_key: SigningKey
    allowed_keys: frozenset[bytes]  # genesis validators + configured non-validator peers
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: pick a free port; P2PNode.listen_port reports it
    listen: bool = True
    persistent_peers: tuple[PeerAddress, ...] = ()
    limits: P2PLimits = field(default_factory=P2PLimits)
    rng: random.Random = field(default_factory=random.Random)  # backoff jitter

    def __post_init__(self) -> None:
        assert all(len(key) == PUBLIC_KEY_BYTES for key in self.allowed_keys)
        for peer in self.persistent_peers:
            assert peer.public_key in self.allowed_keys, "persistent peer not in allowed set"


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    channel_id: int
    on_message: OnMessage
    send_queue_max: int
    message_bytes_max: int
