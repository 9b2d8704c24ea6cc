"""Copies counters kept as plain objects (p2p.stats.P2PStats, NodeNetwork's message counts)
into the node's Prometheus metrics once a second.

p2p imports no prometheus_client (docs/ARCHITECTURE.md), so its counters are plain
`Counter`s; this module turns their growth into Prometheus counter increments. Labels stay
bounded: peers are named after genesis validators (others are "observer"), channels and
message types come from small fixed sets.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable, Mapping
from typing import Any

from node.metrics import NodeMetrics
from node.network import CHANNEL_CONSENSUS, CHANNEL_SYNC, CHANNEL_TXS, NodeNetwork

_CHANNEL_NAMES = {
    0: "control",
    CHANNEL_CONSENSUS: "consensus",
    CHANNEL_TXS: "txs",
    CHANNEL_SYNC: "sync",
}


class MetricsSync:
    def __init__(
        self, *, metrics: NodeMetrics, network: NodeNetwork, peer_names: Mapping[bytes, str]
    ) -> None:
        self._metrics = metrics
        self._network = network
        self._peer_names = peer_names
        self._seen: dict[str, Counter[Hashable]] = {}

    def _delta(self, name: str, current: Mapping[Any, int]) -> dict[Hashable, int]:
        seen = self._seen.setdefault(name, Counter())
        grown = {key: value - seen[key] for key, value in current.items() if value > seen[key]}
        seen.update(grown)
        return grown

    def sync(self) -> None:
        stats = self._network.p2p.stats
        metrics = self._metrics
        for key, grown in self._delta("wire_out", stats.wire_bytes_sent).items():
            assert isinstance(key, bytes)
            metrics.p2p_sent(self._peer_names.get(key, "observer"), grown)
        for key, grown in self._delta("wire_in", stats.wire_bytes_received).items():
            assert isinstance(key, bytes)
            metrics.p2p_received(self._peer_names.get(key, "observer"), grown)
        for direction, counter in (("out", stats.messages_sent), ("in", stats.messages_received)):
            per_channel: Counter[int] = Counter()
            for (_, channel), count in counter.items():
                per_channel[channel] += count
            for channel_key, grown in self._delta(f"messages_{direction}", per_channel).items():
                assert isinstance(channel_key, int)
                label = _CHANNEL_NAMES.get(channel_key, "other")
                metrics.p2p_messages_total.labels(channel=label, direction=direction).inc(grown)
        for reason, grown in self._delta("drops", stats.drops).items():
            metrics.p2p_dropped_total.labels(reason=str(reason)).inc(grown)
        # Connections refused or ended for the peer's fault (unknown_key, oversized_frame,
        # bad_mac, bad_handshake, …) count as drops too, by the same reason vocabulary.
        for reason, grown in self._delta("refused", stats.rejected_connections).items():
            metrics.p2p_dropped_total.labels(reason=str(reason)).inc(grown)
        for kind, grown in self._delta("consensus_in", self._network.messages_in).items():
            metrics.consensus_messages_total.labels(type=str(kind), direction="in").inc(grown)
        metrics.p2p_peers.set(len(self._network.p2p.connected_keys()))

    async def run(self, *, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.sync()
