"""The bench against real node processes on 127.0.0.1 (slow tier): it launches a cluster
through the CLI, loads it, measures, writes results.json/report.md/plots, and tears the
cluster down. Runs the `seoulchain bench` console script (node/cli.py hands it to
bench.cli.main); the option-error test uses `python -m bench`, the other entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import results

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240
SEOULCHAIN_BENCH = [str(Path(sys.executable).parent / "seoulchain"), "bench"]


def run_bench(
    out: Path, *arguments: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = subprocess.run(
        [*SEOULCHAIN_BENCH, "--out", str(out), "--no-progress", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    path = out / "results.json"
    assert path.exists(), f"no results.json; stderr:\n{done.stderr[-3000:]}"
    return done, json.loads(path.read_text())


def assert_cluster_stopped(out: Path) -> None:
    for pid_file in (out / "cluster").glob("node*/node.pid"):
        pid = int(pid_file.read_text())
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.slow
def test_solo_open_loop_run_measures_commits_and_latency(tmp_path: Path) -> None:
    out = tmp_path / "solo"
    done, document = run_bench(
        out, "--nodes", "1", "--consensus", "solo", "--duration", "5", "--rate", "200"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert results.validate(document) == []
    (run,) = document["runs"]
    assert run["committed"] > 0
    assert run["committed"] + run["pending_at_end"] + sum(run["rejected"].values()) == run["sent"]
    latency = run["latency"]
    assert 0 < latency["p50_s"] <= latency["p90_s"] <= latency["p99_s"] <= latency["max_s"]
    assert run["throughput_tps"] > 0
    assert run["consistency"]["same_app_hash"] is True
    node = run["nodes"]["node0"]
    assert node["cpu_s"] > 0
    assert node["rss_bytes_max"] > 0
    assert node["metrics"]["blocks"] > 0
    assert run["series"]["per_second"]
    assert run["series"]["nodes"]["node0"]
    assert (out / "report.md").read_text().startswith("# seoulchain bench")
    assert (out / "latency_cdf.png").exists()
    assert (out / "throughput.png").exists()
    assert "| open 200/s |" in done.stdout
    assert_cluster_stopped(out)


@pytest.mark.slow
def test_solo_closed_loop_run(tmp_path: Path) -> None:
    out = tmp_path / "closed"
    done, document = run_bench(
        out, "--consensus", "solo", "--duration", "3", "--concurrency", "4", "--no-plots"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = document["runs"]
    assert run["mode"] == "closed"
    assert run["committed"] > 0
    assert run["sender"]["commit_timeouts"] == 0
    assert_cluster_stopped(out)
    # The same --out again (as scripts/demo.sh does): the stopped cluster is replaced.
    first_genesis = (out / "cluster" / "genesis.json").read_text()
    done, document = run_bench(
        out, "--consensus", "solo", "--duration", "2", "--concurrency", "2", "--no-plots"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert document["runs"][0]["committed"] > 0
    assert (out / "cluster" / "genesis.json").read_text() != first_genesis
    assert_cluster_stopped(out)


@pytest.mark.slow
def test_pbft_four_nodes_survive_killing_the_primary(tmp_path: Path) -> None:
    out = tmp_path / "pbft"
    done, document = run_bench(
        out,
        "--nodes",
        "4",
        "--consensus",
        "pbft",
        "--duration",
        "8",
        "--rate",
        "100",
        "--fault",
        "kill-primary@3",
        "--no-plots",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = document["runs"]
    assert run["committed"] > 0
    fault = run["fault"]
    assert fault["error"] is None
    assert fault["killed_node"] in run["nodes"]
    assert run["nodes"][fault["killed_node"]]["killed"] is True
    assert fault["recovered"] is True, fault
    assert fault["recovery_s"] > 0
    consistency = run["consistency"]
    assert len(consistency["nodes_checked"]) == 3
    assert consistency["same_block_hash"]
    assert consistency["same_app_hash"]
    assert_cluster_stopped(out)


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--consensus",
            "solo",
            "--fault",
            "kill-primary@3",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("seoulchain bench: error: --fault kill-primary needs")
    assert not (tmp_path / "cluster").exists()


@pytest.mark.slow
def test_attach_to_a_running_cluster_leaves_it_running(tmp_path: Path) -> None:
    import random

    from bench import cluster

    running = cluster.launch(
        tmp_path / "net", nodes=1, consensus="solo", agencies=2, rng=random.Random()
    )
    try:
        out = tmp_path / "attached"
        done, document = run_bench(
            out,
            "--attach",
            str(tmp_path / "net"),
            "--duration",
            "3",
            "--rate",
            "100",
            "--no-plots",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert document["cluster"]["launched"] is False
        assert document["cluster"]["consensus"] == "solo"
        assert document["signing"]["agencies"] == 2
        assert document["runs"][0]["committed"] > 0
        assert "left running" in document["teardown"]
        assert running.nodes[0].pid() is not None, "the bench stopped a cluster it did not start"
        # Attach by URL too: same node, keys from the testnet's agencies directory.
        node = running.nodes[0]
        done, document = run_bench(
            tmp_path / "by-url",
            "--rpc",
            node.rpc_url,
            "--metrics",
            str(node.metrics_url),
            "--agencies-dir",
            str(tmp_path / "net" / "agencies"),
            "--duration",
            "2",
            "--rate",
            "50",
            "--no-plots",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert document["runs"][0]["committed"] > 0
        assert document["runs"][0]["nodes"]["node0"]["metrics"]["blocks"] > 0
    finally:
        cluster.teardown(running)


@pytest.mark.slow
def test_solo_rate_sweep_writes_the_curve(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    done, document = run_bench(
        out, "--consensus", "solo", "--sweep", "100,200", "--duration", "2", "--warmup", "0.5"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [run["offered_tps"] for run in document["runs"]] == [100.0, 200.0]
    sweep = document["sweep"]
    assert [point["offered_tps"] for point in sweep["points"]] == [100.0, 200.0]
    assert all(point["committed_tps"] > 0 for point in sweep["points"])
    assert sweep["max_committed_tps"] > 0
    assert (out / "sweep.png").exists()
    assert "## Rate sweep" in (out / "report.md").read_text()
    assert_cluster_stopped(out)
