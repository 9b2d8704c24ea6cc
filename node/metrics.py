"""Prometheus metrics of one node, and the small HTTP server that exposes them.

Why an explicit registry: prometheus_client refuses to register one name twice in a
registry, and tests (and the local cluster) run several nodes in one process, so nothing here
touches the global default registry. Every node builds `NodeMetrics(CollectorRegistry())`.

Label cardinality is bounded: label values come from small fixed sets (RPC methods, mempool
reject reasons, message types, peer names of the validator set). `BoundedLabel` enforces it:
after `values_max` distinct values, anything new is reported as "other". Never put a tx hash,
a request id or a client address in a label. docs/METRICS.md lists every metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from node.rpc.names import METHOD_NAMES

log = logging.getLogger(__name__)

NAMESPACE = "seoulchain"
OTHER = "other"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Fine from 5 to 100 ms, where a block's proposal-to-commit time lies below saturation (the
# bench report quotes its quantiles, interpolated within a bucket).
_COMMIT_BUCKETS = (
    0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
)  # fmt: skip
_BLOCK_TXS_BUCKETS = (0, 1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# Doubling from 0.5 ms, like etcd's disk_wal_fsync_duration_seconds: a synced write on an SSD
# takes a fraction of a millisecond, on a busy VM disk several.
_SYNC_BUCKETS = tuple(0.0005 * 2**power for power in range(13))
_PERSIST_OUTPUTS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


MESSAGE_TYPES_MAX = 48  # distinct consensus message type labels


class BoundedLabel:
    """Maps label values to themselves until `values_max` distinct ones were seen, then to
    "other"; values listed in `known` are always accepted."""

    def __init__(self, *, known: Iterable[str] = (), values_max: int = 32) -> None:
        self._known = frozenset(known)
        self._seen: set[str] = set()
        self._values_max = values_max

    def __call__(self, value: str) -> str:
        if value in self._known or value in self._seen:
            return value
        if len(self._seen) >= self._values_max:
            return OTHER
        self._seen.add(value)
        return value


class NodeMetrics:
    """Every metric of a node, on the registry passed in. The driver, mempool, p2p glue,
    storage glue and RPC server update the attributes or call the helpers below."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        rpc_methods: Iterable[str] = METHOD_NAMES,
        process: bool = True,
    ) -> None:
        self.registry = registry
        if process:
            ProcessCollector(namespace=NAMESPACE, registry=registry)
        self._build_consensus(registry)
        self._build_mempool(registry)
        self._build_p2p(registry)
        self._build_rpc(registry)
        self._build_storage(registry)
        self._rpc_method = BoundedLabel(known=rpc_methods, values_max=0)
        self._reason = BoundedLabel(values_max=32)
        self._message_type = BoundedLabel(values_max=MESSAGE_TYPES_MAX)
        # (message type, direction) -> its labelled counter: a node counts every consensus
        # message it sends, and `labels()` (a lock and a dict of label tuples) cost more
        # than the increment. Bounded: 2 directions x (the label's values + "other").
        self._consensus_messages: dict[tuple[str, str], Counter] = {}
        self._peer = BoundedLabel(values_max=256)
        self._channel = BoundedLabel(values_max=16)
        # counter -> the running total it was last advanced to (`_advance`); five counters
        self._totals_seen: dict[Counter, int] = {}

    def _build_consensus(self, registry: CollectorRegistry) -> None:
        def name(suffix: str) -> str:
            return f"{NAMESPACE}_consensus_{suffix}"

        self.consensus_height = Gauge(
            name("height"), "Height of the last committed block.", registry=registry
        )
        self.consensus_view = Gauge(
            name("view"), "Current PBFT view or Raft term (CometBFT's round).", registry=registry
        )
        self.consensus_view_changes_total = Counter(
            name("view_changes"),
            "View changes (PBFT) or elections (Raft) started.",
            registry=registry,
        )
        self.consensus_block_txs = Histogram(
            name("block_txs"),
            "Transactions per committed block.",
            buckets=_BLOCK_TXS_BUCKETS,
            registry=registry,
        )
        self.consensus_block_interval_seconds = Histogram(
            name("block_interval_seconds"),
            "Time between two consecutive commits.",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self.consensus_commit_seconds = Histogram(
            name("commit_seconds"),
            "Time from proposing a block to committing it.",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self.consensus_persist_seconds = Histogram(
            name("persist_seconds"),
            "Time of one synced write of consensus state (votes, certificates, view).",
            buckets=_SYNC_BUCKETS,
            registry=registry,
        )
        self.consensus_persist_outputs = Histogram(
            name("persist_outputs"),
            "Engine outputs one synced consensus write covered (group commit).",
            buckets=_PERSIST_OUTPUTS_BUCKETS,
            registry=registry,
        )
        self.consensus_messages_total = Counter(
            name("messages"),
            "Consensus messages by type and direction (in|out).",
            ["type", "direction"],
            registry=registry,
        )

    def _build_mempool(self, registry: CollectorRegistry) -> None:
        def name(suffix: str) -> str:
            return f"{NAMESPACE}_mempool_{suffix}"

        self.mempool_size = Gauge(
            name("size"), "Transactions waiting in the mempool.", registry=registry
        )
        self.mempool_bytes = Gauge(
            name("bytes"), "Bytes of transactions waiting in the mempool.", registry=registry
        )
        self.mempool_rejected_total = Counter(
            name("rejected"),
            "Transactions refused by the mempool, by reason.",
            ["reason"],
            registry=registry,
        )
        self.mempool_received_total = Counter(
            name("received"),
            "Transactions offered to the mempool (RPC and gossip).",
            registry=registry,
        )
        self.mempool_standby_txs = Gauge(
            name("standby_txs"),
            "Gossiped transactions a non-leader keeps unchecked in case it becomes leader.",
            registry=registry,
        )
        self.mempool_standby_bytes = Gauge(
            name("standby_bytes"), "Bytes of standby transactions.", registry=registry
        )
        self.mempool_standby_evicted_total = Counter(
            name("standby_evicted"),
            "Standby transactions pushed out by the count or byte bound, oldest first.",
            registry=registry,
        )
        self.mempool_standby_promoted_total = Counter(
            name("standby_promoted"),
            "Standby transactions handed to full admission after this node became leader.",
            registry=registry,
        )
        self.mempool_standby_bad_signature_total = Counter(
            name("standby_bad_signature"),
            "Standby transactions the background verifier found undecodable or badly signed "
            "(dropped from standby).",
            registry=registry,
        )
        self.mempool_standby_verify_skipped_total = Counter(
            name("standby_verify_skipped"),
            "Standby transactions not verified in the background because its queue was full "
            "(their block verifies them instead).",
            registry=registry,
        )
        self.mempool_signature_checks_total = Counter(
            name("signature_checks"),
            "Transaction signatures this node checked (verified-cache misses): admission, the "
            "standby verifier and block validation alike. Against the txs committed it shows "
            "how much verify work went to txs that did not commit.",
            registry=registry,
        )

    def _build_p2p(self, registry: CollectorRegistry) -> None:
        def name(suffix: str) -> str:
            return f"{NAMESPACE}_p2p_{suffix}"

        self.p2p_peers = Gauge(name("peers"), "Connected, authenticated peers.", registry=registry)
        self.p2p_bytes_sent_total = Counter(
            name("bytes_sent"), "Bytes sent, by peer.", ["peer"], registry=registry
        )
        self.p2p_bytes_received_total = Counter(
            name("bytes_received"), "Bytes received, by peer.", ["peer"], registry=registry
        )
        self.p2p_messages_total = Counter(
            name("messages"),
            "Frames by channel and direction (in|out).",
            ["channel", "direction"],
            registry=registry,
        )
        self.p2p_dropped_total = Counter(
            name("dropped"), "Frames or peers dropped, by reason.", ["reason"], registry=registry
        )

    def _build_rpc(self, registry: CollectorRegistry) -> None:
        def name(suffix: str) -> str:
            return f"{NAMESPACE}_rpc_{suffix}"

        self.rpc_requests_total = Counter(
            name("requests"),
            "JSON-RPC calls by method and result code (0 = success).",
            ["method", "code"],
            registry=registry,
        )
        self.rpc_request_seconds = Histogram(
            name("request_seconds"),
            "JSON-RPC call latency by method.",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.rpc_http_rejected_total = Counter(
            name("http_rejected"),
            "HTTP requests or connections refused before JSON-RPC, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rpc_ws_clients = Gauge(
            name("ws_clients"), "Open WebSocket connections.", registry=registry
        )
        self.rpc_ws_subscriptions = Gauge(
            name("ws_subscriptions"), "Active WebSocket event subscriptions.", registry=registry
        )
        self.rpc_ws_dropped_clients_total = Counter(
            name("ws_dropped_clients"),
            "WebSocket clients dropped by the server, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events_dropped_total = Counter(
            f"{NAMESPACE}_events_dropped",
            "Events a subscriber could not take (queue full).",
            registry=registry,
        )

    def _build_storage(self, registry: CollectorRegistry) -> None:
        def name(suffix: str) -> str:
            return f"{NAMESPACE}_storage_{suffix}"

        self.storage_commit_seconds = Histogram(
            name("commit_seconds"),
            "Time to write one committed block's synced batch.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.storage_db_bytes = Gauge(
            name("db_bytes"), "Approximate size of the database on disk.", registry=registry
        )

    # --- helpers that keep label values bounded ---

    def rpc_method_label(self, method: str) -> str:
        return self._rpc_method(method)

    def observe_rpc(self, method: str, code: int, seconds: float) -> None:
        label = self._rpc_method(method)
        self.rpc_requests_total.labels(method=label, code=str(code)).inc()
        self.rpc_request_seconds.labels(method=label).observe(seconds)

    def rpc_rejected(self, reason: str) -> None:
        self.rpc_http_rejected_total.labels(reason=self._reason(reason)).inc()

    def ws_client_dropped(self, reason: str) -> None:
        self.rpc_ws_dropped_clients_total.labels(reason=self._reason(reason)).inc()

    def observe_standby(self, *, txs: int, size_bytes: int, evicted: int, promoted: int) -> None:
        """Standby gauges, and the counters advanced to the store's running totals."""
        self.mempool_standby_txs.set(txs)
        self.mempool_standby_bytes.set(size_bytes)
        self._advance(self.mempool_standby_evicted_total, evicted)
        self._advance(self.mempool_standby_promoted_total, promoted)

    def observe_standby_verify(self, *, forged: int, skipped: int) -> None:
        """The background verifier's counters advanced to its running totals."""
        self._advance(self.mempool_standby_bad_signature_total, forged)
        self._advance(self.mempool_standby_verify_skipped_total, skipped)

    def observe_signature_checks(self, total: int) -> None:
        """The counter advanced to the verify pool's running total of signature checks."""
        self._advance(self.mempool_signature_checks_total, total)

    def _advance(self, counter: Counter, total: int) -> None:
        """Increment `counter` by what the running `total` (kept by a part that imports no
        prometheus_client) grew since the last call, so observing twice adds nothing twice."""
        seen = self._totals_seen.get(counter, 0)
        assert total >= seen, "running totals never go back"
        counter.inc(total - seen)
        self._totals_seen[counter] = total

    def mempool_rejected(self, reason: str) -> None:
        self.mempool_rejected_total.labels(reason=self._reason(reason)).inc()

    def consensus_message(self, message_type: str, *, direction: str) -> None:
        key = (message_type, direction)
        counter = self._consensus_messages.get(key)
        if counter is None:
            assert direction in ("in", "out"), direction
            label = self._message_type(message_type)
            counter = self.consensus_messages_total.labels(type=label, direction=direction)
            if label != OTHER:  # a type past the bound is not remembered either
                self._consensus_messages[key] = counter
        counter.inc()

    def p2p_sent(self, peer: str, size_bytes: int) -> None:
        self.p2p_bytes_sent_total.labels(peer=self._peer(peer)).inc(size_bytes)

    def p2p_received(self, peer: str, size_bytes: int) -> None:
        self.p2p_bytes_received_total.labels(peer=self._peer(peer)).inc(size_bytes)

    def p2p_message(self, channel: str, *, direction: str) -> None:
        assert direction in ("in", "out"), direction
        label = self._channel(channel)
        self.p2p_messages_total.labels(channel=label, direction=direction).inc()

    def p2p_dropped(self, reason: str) -> None:
        self.p2p_dropped_total.labels(reason=self._reason(reason)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def nop_metrics() -> NodeMetrics:
    """Metrics on a private throwaway registry, for simulations and tests that don't scrape.
    Cheaper to keep one class than to keep a no-op twin in sync with it."""
    return NodeMetrics(CollectorRegistry(), process=False)


class MetricsServer:
    """Serves GET /metrics for one registry on its own port (127.0.0.1 unless configured)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        before_scrape: Callable[[], None] | None = None,
    ):
        self._registry = registry
        self._before_scrape = before_scrape  # copies plain counters in, so a scrape is current
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        assert self._runner is not None, "metrics server not started"
        addresses = self._runner.addresses
        assert addresses, "metrics server has no socket"
        return int(addresses[0][1])

    async def start(self) -> None:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        log.info("metrics server listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        if self._before_scrape is not None:
            self._before_scrape()
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
