"""Shared fixtures of the bench tests: a canned results document (what one small open-loop
run and a two-point sweep produce), so schema, report and plot tests need no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from bench import results


def canned_run(label: str, offered: float, committed_tps: float, p99_s: float) -> dict[str, Any]:
    return {
        "label": label,
        "mode": "open",
        "offered_tps": offered,
        "concurrency": None,
        "duration_s": 5.0,
        "warmup_s": 1.0,
        "send_end_s": 5.0,
        "drain_end_s": 5.4,
        "sent": int(offered * 5),
        "committed": int(committed_tps * 5),
        "pending_at_end": 0,
        "rejected": {"mempool:8": 3},
        "reject_samples": {"mempool:8": "mempool full"},
        "foreign_txs": 0,
        "throughput_tps": committed_tps,
        "sent_tps": offered,
        "throughput_overall_tps": committed_tps,
        "latency": {
            "count": 100,
            "mean_s": 0.05,
            "p50_s": 0.045,
            "p90_s": 0.07,
            "p99_s": p99_s,
            "max_s": p99_s * 1.2,
            "min_s": 0.01,
        },
        "latency_all": None,
        "latency_cdf": [[0.01, 0.01], [0.045, 0.5], [p99_s, 0.99], [p99_s * 1.2, 1.0]],
        "sender": {
            "calls": 500,
            "call_errors": 0,
            "stalls": 0,
            "behind_s_max": 0.001,
            "commit_timeouts": 0,
            "errors_by_kind": {},
        },
        "loadgen_cpu_s": 0.25,
        "loadgen_cpu_share": 0.05,
        "nodes": {
            "node0": {
                "killed": False,
                "pid": 1234,
                "cpu_s": 0.6,
                "cpu_s_per_committed_tx": 0.0004,
                "rss_bytes_max": 52 * 2**20,
                "metrics": {
                    "blocks": 80.0,
                    "consensus_messages_per_block": 9.0,
                    "p2p_bytes_sent_per_block": 4096.0,
                    "view_changes": 0.0,
                },
            }
        },
        "node_cpu_s_per_committed_tx": 0.0004,
        "blocks": 80,
        "block_txs_mean": 18.5,
        "height_max": 85,
        "fault": None,
        "consistency": {
            "same_height": True,
            "same_block_hash": True,
            "same_app_hash": True,
            "heights": {"node0": 86},
            "app_hash": "ab" * 32,
        },
        "series": {
            "per_second": [
                {"t_s": s, "sent": int(offered), "committed": int(committed_tps)} for s in range(5)
            ],
            "blocks": [[0.05, 1, 10, 10]],
            "nodes": {"node0": [{"t_s": 0.0, "height": 1.0, "mempool_size": 3.0}]},
        },
    }


@pytest.fixture
def canned_document() -> dict[str, Any]:
    runs = [
        canned_run("open 300/s", 300.0, 299.0, 0.09),
        canned_run("open 900/s", 900.0, 610.0, 2.5),
    ]
    return {
        "schema": results.SCHEMA_NAME,
        "version": results.SCHEMA_VERSION,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "command": ["seoulchain", "bench", "--sweep", "300,900"],
        "config": {"warmup_s": 1.0, "drain_s": 10.0},
        "environment": {"cpu_count": 2, "python": "3.11.7", "load_average": [1.0, 1.0, 1.0]},
        "cluster": {"launched": True, "consensus": "solo", "nodes_count": 1},
        "signing": {
            "txs": 6004,
            "seconds": 0.5,
            "workers": 2,
            "agencies": 8,
            "tx_bytes_mean": 250.0,
        },
        "runs": runs,
        "sweep": results.sweep_section(runs),
        "prometheus": None,
        "teardown": "node0: pid 1234 stopped",
    }
