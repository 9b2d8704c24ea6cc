"""A run's summary (bench/runner.py: summarise) from a ledger filled by hand: the
steady-state window, warm-up exclusion, and the per-second series."""

from __future__ import annotations

import pytest

from bench.ledger import Ledger
from bench.loadgen import SenderStats
from bench.runner import RunSpec, summarise
from bench.sampler import Sampler


def test_summary_of_a_hand_made_run() -> None:
    names = [f"{i:064x}" for i in range(10)]
    ledger = Ledger(names)
    for index in range(10):  # 10 tx/s for 1 s... then 1 tx/s
        ledger.sent_at(index, index * 0.1 if index < 5 else 1.0 + (index - 5))
    # txs 0-4 (sent in warm-up) commit at 0.6; txs 5-8 commit 0.2 s after sending; 9 never.
    ledger.block_seen(0.6, {"height": 1, "tx_hashes": names[:5], "num_txs": 5}, node="n0")
    for index in range(5, 9):
        sent = ledger.ideal_s[index]
        assert sent is not None
        block = {"height": index, "tx_hashes": [names[index]], "num_txs": 1}
        ledger.block_seen(sent + 0.2, block, node="n0")
    spec = RunSpec(mode="open", rate_tps=5.0, duration_s=5.0, warmup_s=1.0, drain_s=2.0)
    summary = summarise(
        spec,
        ledger,
        SenderStats(calls=3),
        Sampler([], clock_zero=0.0),
        send_end_s=5.0,
        drain_end_s=7.0,
        loadgen_cpu_s=0.7,
        fault=None,
        consistency={"same_app_hash": True},
    )
    assert summary["sent"] == 10
    assert summary["committed"] == 9
    assert summary["pending_at_end"] == 1
    assert summary["latency"]["count"] == 4  # only txs sent at or after the 1 s warm-up
    assert summary["latency"]["p50_s"] == pytest.approx(0.2)
    assert summary["latency_all"]["max_s"] == pytest.approx(0.6)
    assert summary["throughput_tps"] == pytest.approx(4 / 4.0)  # commits in [1 s, 5 s)
    assert summary["loadgen_cpu_share"] == pytest.approx(0.1)
    assert summary["blocks"] == 5
    assert summary["height_max"] == 8
    per_second = summary["series"]["per_second"]
    assert len(per_second) == 7
    assert [p["committed"] for p in per_second[:3]] == [5, 1, 1]
    assert [p["sent"] for p in per_second[:2]] == [5, 1]
