"""bench/app.py plan_runs: an open loop signs the whole duration at the rate, and says so
when --txs-max cuts the load short."""

from __future__ import annotations

import logging

import pytest

from bench import app
from bench.cli import build_parser


def plan_for(*argv: str) -> app.Plan:
    return app.plan_runs(build_parser().parse_args(list(argv)))


def test_an_open_loop_signs_the_whole_duration_at_the_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bench.app"):
        plan = plan_for("--rate", "5000", "--duration", "60", "--txs-max", "300000")
    assert plan.counts == [300_000]
    assert not caplog.records


def test_a_txs_max_below_rate_times_duration_shortens_the_load_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bench.app"):
        plan = plan_for("--rate", "5000", "--duration", "60")  # default cap 200,000
    assert plan.counts == [200_000]
    assert "40.0 s of the 60.0 s" in caplog.text
    assert "--txs-max 300000" in caplog.text


def test_a_sweep_caps_each_rate_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bench.app"):
        plan = plan_for("--sweep", "1000,4000", "--duration", "60", "--txs-max", "100000")
    assert plan.counts == [60_000, 100_000]
    assert "at 4000 tx/s" in caplog.text
    assert "at 1000 tx/s" not in caplog.text
