"""The readiness probe's verdict (bench/app.py) and the live progress line
(bench/progress.py)."""

from __future__ import annotations

import io

import pytest

from bench import app
from bench.ledger import Ledger
from bench.loadgen import RunClock
from bench.progress import Progress
from bench.runner import RunSpec


def test_a_committed_probe_passes() -> None:
    app._check_ready_answer(
        {"check_tx": {"code": 0}, "tx_result": {"code": 0}, "hash": "ab", "height": 3}
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"check_tx": {"code": 3, "codespace": "mempool", "log": "wrong chain"}}, "refused"),
        ({"check_tx": {"code": 0}, "tx_result": {"code": 21, "log": "no notary role"}}, "failed"),
        ("not a dict", "unexpected answer"),
    ],
)
def test_a_refused_or_failed_probe_stops_the_bench_with_the_reason(
    answer: object, message: str
) -> None:
    with pytest.raises(app.BenchError, match=message):
        app._check_ready_answer(answer)


def test_progress_line_shows_rates_percentiles_and_height() -> None:
    names = [f"{i:064x}" for i in range(4)]
    ledger = Ledger(names)
    for index in range(4):
        ledger.sent_at(index, 0.0)
    ledger.block_seen(0.1, {"height": 9, "tx_hashes": names[:3], "num_txs": 3}, node="n")
    spec = RunSpec(mode="open", rate_tps=100.0, duration_s=5, warmup_s=1, drain_s=1)
    stream = io.StringIO()
    progress = Progress(ledger, RunClock(), spec, enabled=True, stream=stream)
    line = progress.line()
    assert "] 100 tx/s: " in line
    assert "sent 4/s committed 3/s" in line
    assert "p50 100 ms p99 100 ms" in line
    assert "height 9 pending 1" in line
    assert "sent 0/s committed 0/s" in progress.line()  # per second: counts since last line
