"""A real Prometheus server against a live solo node (slow tier): the node's exposition
passes `promtool check metrics`, the server scrapes it, and PromQL over the HTTP API returns
the node's seoulchain_consensus_height. Then the same through `bench --prometheus`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import cluster, prom

ROOT = Path(__file__).resolve().parents[2]


def dashboard_expressions() -> list[str]:
    document = json.loads((ROOT / "bench" / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def prometheus_or_skip() -> None:
    try:
        prom.ensure_installed()
    except (prom.PrometheusError, subprocess.TimeoutExpired, OSError) as error:
        pytest.skip(f"scripts/install-prometheus.sh could not install Prometheus: {error}")


@pytest.fixture
def solo_node(tmp_path: Path) -> Iterator[cluster.Cluster]:
    launched = cluster.launch(
        tmp_path / "cluster", nodes=1, consensus="solo", agencies=1, rng=random.Random()
    )
    try:
        yield launched
    finally:
        cluster.teardown(launched)


@pytest.mark.slow
def test_prometheus_scrapes_a_live_node(solo_node: cluster.Cluster, tmp_path: Path) -> None:
    prometheus_or_skip()
    (node,) = solo_node.nodes
    assert node.metrics_url is not None
    with urllib.request.urlopen(node.metrics_url, timeout=5) as response:
        exposition = response.read().decode()
    passed, output = prom.check_metrics(exposition)
    assert passed, output
    target = node.metrics_url.removeprefix("http://").removesuffix("/metrics")
    server = prom.start(tmp_path / "prometheus", [target])
    try:
        assert (tmp_path / "prometheus" / "prometheus.yml").read_text().count(target) == 1
        server.wait_for_target_up()
        result = server.query("seoulchain_consensus_height")
        assert len(result) == 1
        assert result[0]["metric"]["__name__"] == "seoulchain_consensus_height"
        assert result[0]["metric"]["instance"] == target
        assert float(result[0]["value"][1]) >= 0
        assert (tmp_path / "prometheus" / "data").is_dir()
        # Every query of the Grafana dashboard is valid PromQL for this server.
        for expression in dashboard_expressions():
            server.query(
                expression.replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*")
            )
    finally:
        server.stop()
    assert server.process.poll() is not None


@pytest.mark.slow
def test_bench_with_prometheus_reports_promql_figures(tmp_path: Path) -> None:
    prometheus_or_skip()
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--consensus",
            "solo",
            "--duration",
            "4",
            "--rate",
            "100",
            "--prometheus",
            "--no-plots",
            "--no-progress",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    section = document["prometheus"]
    assert section["kept"] is False
    figures = section["figures"]["open 100/s"]
    assert figures["commit_rate_blocks_per_s"] > 0
    assert (out / "prometheus" / "prometheus.yml").exists()
    assert "## Prometheus" in (out / "report.md").read_text()
