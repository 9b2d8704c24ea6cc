"""NodeMetrics: explicit registries, bounded labels, exposition that Prometheus can parse,
and the metrics HTTP server."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from node.metrics import (
    MESSAGE_TYPES_MAX,
    OTHER,
    BoundedLabel,
    MetricsServer,
    NodeMetrics,
    nop_metrics,
)

REQUIRED = {
    "seoulchain_consensus_height",
    "seoulchain_consensus_view",
    "seoulchain_consensus_view_changes",
    "seoulchain_consensus_block_txs",
    "seoulchain_consensus_block_interval_seconds",
    "seoulchain_consensus_commit_seconds",
    "seoulchain_consensus_messages",
    "seoulchain_consensus_persist_seconds",
    "seoulchain_consensus_persist_outputs",
    "seoulchain_mempool_size",
    "seoulchain_mempool_bytes",
    "seoulchain_mempool_rejected",
    "seoulchain_mempool_received",
    "seoulchain_p2p_peers",
    "seoulchain_p2p_bytes_sent",
    "seoulchain_p2p_bytes_received",
    "seoulchain_p2p_messages",
    "seoulchain_p2p_dropped",
    "seoulchain_rpc_requests",
    "seoulchain_rpc_request_seconds",
    "seoulchain_storage_commit_seconds",
    "seoulchain_storage_db_bytes",
    "seoulchain_process_cpu_seconds",
}


def _families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_two_nodes_in_one_process_and_exposition_parses() -> None:
    first = NodeMetrics(CollectorRegistry())
    second = NodeMetrics(CollectorRegistry())  # would raise on a shared registry
    first.consensus_height.set(7)
    first.mempool_rejected("full")
    first.consensus_message("prepare", direction="in")
    first.p2p_sent("validator-1", 300)
    first.observe_rpc("status", 0, 0.002)
    families = _families(first.exposition().decode())
    missing = REQUIRED - set(families)
    assert not missing, missing
    second_text = second.exposition().decode()
    assert "seoulchain_consensus_height 0.0" in second_text
    assert "seoulchain_consensus_height 7.0" in first.exposition().decode()


def test_rpc_method_label_is_limited_to_known_methods() -> None:
    metrics = nop_metrics()
    metrics.observe_rpc("status", 0, 0.001)
    for n in range(50):
        metrics.observe_rpc(f"made_up_{n}", -32601, 0.001)
    text = metrics.exposition().decode()
    assert 'method="status"' in text
    assert "made_up" not in text
    assert metrics.rpc_requests_total.labels(method=OTHER, code="-32601")._value.get() == 50


def test_bounded_label_caps_distinct_values() -> None:
    label = BoundedLabel(known=("a",), values_max=2)
    assert [label(v) for v in ("a", "x", "y", "z", "x", "a")] == ["a", "x", "y", OTHER, "x", "a"]


def test_consensus_messages_are_counted_per_type_and_direction_within_the_label_bound() -> None:
    metrics = nop_metrics()
    for _ in range(3):
        metrics.consensus_message("Prepare", direction="out")
    metrics.consensus_message("Prepare", direction="in")
    for n in range(MESSAGE_TYPES_MAX + 10):
        metrics.consensus_message(f"Made{n}", direction="out")
        metrics.consensus_message(f"Made{n}", direction="out")

    def count(message_type: str, direction: str) -> float:
        child = metrics.consensus_messages_total.labels(type=message_type, direction=direction)
        return float(child._value.get())

    assert count("Prepare", "out") == 3
    assert count("Prepare", "in") == 1
    assert count("Made0", "out") == 2
    assert count(OTHER, "out") == 2 * 11  # the types past the bound (one slot is Prepare's)
    assert len(metrics._consensus_messages) <= 2 * MESSAGE_TYPES_MAX


def test_direction_is_checked() -> None:
    with pytest.raises(AssertionError):
        nop_metrics().consensus_message("prepare", direction="sideways")


@pytest.mark.slow
async def test_metrics_server_serves_its_registry_on_loopback() -> None:
    metrics = NodeMetrics(CollectorRegistry())
    metrics.mempool_size.set(3)
    server = MetricsServer(metrics.registry, port=0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        families = _families(text)
        assert "seoulchain_mempool_size" in families
        assert "seoulchain_mempool_size 3.0" in text
    finally:
        await server.stop()
