"""bench/grafana-dashboard.json: importable JSON whose every query names metrics the node
really exports (node/metrics.py), covering the panels the brief asks for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from node.metrics import NodeMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "bench" / "grafana-dashboard.json"


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def exported_sample_names() -> set[str]:
    registry = CollectorRegistry()
    NodeMetrics(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_dashboard_is_importable_json_with_a_datasource_input() -> None:
    document = dashboard()
    assert document["uid"] == "seoulchain-bench"
    assert document["__inputs"][0]["pluginId"] == "prometheus"
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] for panel in document["panels"])


def test_every_queried_metric_is_exported_by_the_node() -> None:
    exported = exported_sample_names()
    used = {name for expr in expressions() for name in re.findall(r"seoulchain_[a-z0-9_]+", expr)}
    assert used, "no seoulchain metric in the dashboard"
    assert used <= exported, f"not exported by node/metrics.py: {sorted(used - exported)}"


def test_the_panels_the_brief_asks_for_are_there() -> None:
    titles = " | ".join(panel["title"].lower() for panel in dashboard()["panels"])
    for wanted in (
        "height",
        "commit rate",
        "per block",
        "commit latency",
        "mempool size",
        "view changes",
        "p2p bytes",
        "rpc request rate",
        "synced writes",
    ):
        assert wanted in titles, wanted
