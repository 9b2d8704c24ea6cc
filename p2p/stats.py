"""Counters for metrics: a plain object the node maps to Prometheus (p2p imports no
prometheus_client). Label cardinality is bounded: peers come from the allowed key set,
channels are at most 256, reasons are a fixed vocabulary (docs/P2P.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PeerChannel = tuple[bytes, int]


@dataclass(slots=True)
class P2PStats:
    bytes_sent: Counter[PeerChannel] = field(default_factory=Counter)
    bytes_received: Counter[PeerChannel] = field(default_factory=Counter)
    messages_sent: Counter[PeerChannel] = field(default_factory=Counter)
    messages_received: Counter[PeerChannel] = field(default_factory=Counter)
    # Sealed frames on the wire, including the 4-byte prefix and the 16-byte MAC.
    wire_bytes_sent: Counter[bytes] = field(default_factory=Counter)
    wire_bytes_received: Counter[bytes] = field(default_factory=Counter)
    frames_sent: Counter[bytes] = field(default_factory=Counter)
    frames_received: Counter[bytes] = field(default_factory=Counter)
    # Messages we dropped: queue_full, too_large, rate_limited, unknown_channel, not_connected.
    drops: Counter[str] = field(default_factory=Counter)
    # Connections refused or ended for the peer's fault (P2PError.reason) or by policy.
    rejected_connections: Counter[str] = field(default_factory=Counter)
    connections_established: Counter[str] = field(default_factory=Counter)  # inbound/outbound
    disconnections: Counter[str] = field(default_factory=Counter)  # by reason
    dial_failures: Counter[str] = field(default_factory=Counter)  # unreachable or reason
