"""Prometheus text parsing and per-run figures (bench/promtext.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bench import promtext


def exposition(height: float, sent: dict[str, float], rejected: dict[str, float]) -> str:
    """A real prometheus_client exposition with the node's metric names."""
    registry = CollectorRegistry()
    Gauge("seoulchain_consensus_height", "h", registry=registry).set(height)
    block_txs = Histogram("seoulchain_consensus_block_txs", "b", registry=registry)
    for _ in range(int(height)):
        block_txs.observe(5)
    bytes_sent = Counter("seoulchain_p2p_bytes_sent", "s", ["peer"], registry=registry)
    for peer, value in sent.items():
        bytes_sent.labels(peer=peer).inc(value)
    messages = Counter(
        "seoulchain_consensus_messages", "m", ["type", "direction"], registry=registry
    )
    messages.labels(type="prepare", direction="out").inc(height * 3)
    reasons = Counter("seoulchain_mempool_rejected", "r", ["reason"], registry=registry)
    for reason, value in rejected.items():
        reasons.labels(reason=reason).inc(value)
    checks = Counter("seoulchain_mempool_signature_checks", "c", registry=registry)
    checks.inc(height * 5 + sum(rejected.values()))  # one per committed tx, one per refusal
    return generate_latest(registry).decode()


def test_parse_reads_names_labels_and_values() -> None:
    scrape = promtext.parse(exposition(7, {"a": 10, "b": 5}, {"full": 2}))
    assert scrape.value("seoulchain_consensus_height") == 7.0
    assert scrape.value("seoulchain_p2p_bytes_sent_total", peer="a") == 10.0
    assert scrape.total("seoulchain_p2p_bytes_sent_total") == 15.0
    assert scrape.by_label("seoulchain_mempool_rejected_total", "reason") == {"full": 2.0}
    assert scrape.total("seoulchain_absent") == 0.0
    assert scrape.malformed_lines == 0


def test_label_values_with_escapes_commas_and_braces() -> None:
    text = 'm{a="x,y",b="say \\"hi\\"",c="{}"} 3\nm2 4 1700000000\n'
    scrape = promtext.parse(text)
    assert scrape.value("m", a="x,y", b='say "hi"', c="{}") == 3.0
    assert scrape.value("m2") == 4.0


def test_malformed_lines_are_counted_and_skipped() -> None:
    scrape = promtext.parse('good 1\nbad{a="x" 2\nnovalue\nworse{a=x} 1\nnum notanumber\n')
    assert scrape.value("good") == 1.0
    assert scrape.malformed_lines == 4


def test_run_figures_are_counter_growth_and_per_block_ratios() -> None:
    before = promtext.parse(exposition(10, {"a": 1000}, {"full": 1}))
    after = promtext.parse(exposition(30, {"a": 5000, "b": 1000}, {"full": 4, "expired": 2}))
    figures = promtext.run_figures(before, after)
    assert figures["blocks"] == 20.0
    assert figures["p2p_bytes_sent"] == 5000.0
    assert figures["p2p_bytes_sent_per_block"] == pytest.approx(250.0)
    assert figures["consensus_messages_per_block"] == pytest.approx(3.0)
    assert figures["rejected_by_reason"] == {"expired": 2.0, "full": 3.0}
    assert figures["propose_to_commit_p50_s"] is None, "the node proposed nothing"
    assert figures["signature_checks"] == 20 * 5 + 5
    assert figures["signature_checks_per_committed_tx"] == pytest.approx(105 / 100)


def test_signature_checks_per_committed_tx_is_none_without_a_block() -> None:
    scrape = promtext.parse(exposition(10, {"a": 1000}, {}))
    assert promtext.run_figures(scrape, scrape)["signature_checks_per_committed_tx"] is None


def histograms_scrape(
    histograms: dict[str, tuple[tuple[float, ...], list[float]]],
) -> promtext.Scrape:
    """A real prometheus_client exposition of histograms named as the node names them:
    {name: (buckets, observations)}."""
    registry = CollectorRegistry()
    for name, (buckets, observations) in histograms.items():
        histogram = Histogram(name, "h", buckets=buckets, registry=registry)
        for value in observations:
            histogram.observe(value)
    return promtext.parse(generate_latest(registry).decode())


def commit_histogram(observations: list[float]) -> promtext.Scrape:
    """The node's commit histogram, with these buckets."""
    return histograms_scrape(
        {"seoulchain_consensus_commit_seconds": ((0.01, 0.02, 0.05, 0.1), observations)}
    )


def test_histogram_quantile_covers_only_what_the_run_observed() -> None:
    warm_up = [0.5] * 50  # before the run: slow, and must not count
    before = commit_histogram(warm_up)
    after = commit_histogram(warm_up + [0.015] * 60 + [0.03] * 30 + [0.07] * 10)
    name = "seoulchain_consensus_commit_seconds"
    # 100 run observations: 60 in (0.01, 0.02], 30 in (0.02, 0.05], 10 in (0.05, 0.1].
    assert promtext.histogram_quantile(before, after, name, 0.5) == pytest.approx(
        0.01 + 0.01 * 50 / 60
    )
    assert promtext.histogram_quantile(before, after, name, 0.9) == pytest.approx(0.05)
    assert promtext.histogram_quantile(before, after, name, 0.99) == pytest.approx(
        0.05 + 0.05 * 9 / 10
    )
    assert promtext.histogram_quantile(before, before, name, 0.5) is None
    beyond = commit_histogram(warm_up + [3.0] * 10)
    assert promtext.histogram_quantile(before, beyond, name, 0.5) == 0.1, "last finite bound"
    figures = promtext.run_figures(before, after)
    assert figures["propose_to_commit_p50_s"] == pytest.approx(0.01 + 0.01 * 50 / 60)
    assert figures["store_commit_p99_s"] is None


def persist_histograms(writes: list[tuple[float, int]]) -> promtext.Scrape:
    """The node's two consensus-write histograms (node/metrics.py), one observation each per
    synced write: its seconds and the engine outputs it covered."""
    return histograms_scrape(
        {
            "seoulchain_consensus_persist_seconds": (
                (0.001, 0.002, 0.004, 0.008),
                [write_s for write_s, _ in writes],
            ),
            "seoulchain_consensus_persist_outputs": (
                (1, 2, 4, 8),
                [float(covered) for _, covered in writes],
            ),
        }
    )


def test_consensus_write_figures_count_the_run_writes_and_their_grouping() -> None:
    warm_up = [(0.05, 1)] * 20
    before = persist_histograms(warm_up)
    # 40 run writes: 30 of one output in (1, 2] ms, 10 of three outputs in (2, 4] ms.
    after = persist_histograms(warm_up + [(0.0015, 1)] * 30 + [(0.003, 3)] * 10)
    figures = promtext.run_figures(before, after)
    assert figures["consensus_persists"] == 40.0
    assert figures["consensus_persist_outputs_mean"] == pytest.approx((30 + 30) / 40)
    assert figures["consensus_persist_p50_s"] == pytest.approx(0.001 + 0.001 * 20 / 30)
    assert figures["consensus_persist_p99_s"] == pytest.approx(0.002 + 0.002 * 9.6 / 10)
    idle = promtext.run_figures(before, before)
    assert idle["consensus_persist_outputs_mean"] is None
    assert idle["consensus_persist_p50_s"] is None
