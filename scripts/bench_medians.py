"""Run `seoulchain bench` several times per setup and print the medians (BENCHMARKS.md tables).

Each run launches a fresh cluster (the bench's default), so runs are independent; the load
average before each run is recorded because on a shared machine it explains most of the
spread. Usage:

    scripts/bench_medians.py --runs 3 --duration 60 \
        pbft:4:4000 pbft:4:1650 raft:3:4000

Each setup is CONSENSUS:NODES:RATE (open loop, tx/s offered). Results go under --out (one
directory per run, with the bench's results.json and report.md) and a summary.json. The
nodes' chain stores are deleted after each run (configs and logs stay): a 60 s run near
saturation leaves 1–4 GB of LevelDB, and a long set filled this machine's disk until a node
stopped on ENOSPC mid-run. `--keep-data` keeps them.

A/B: with `--base DIR` (another checkout, e.g. `git worktree add /tmp/base ac04566`) every
run of a setup is paired with a run of the same setup on DIR's code, the pair's order
alternating, and the medians are given per side (`SETUP@base`, `SETUP@this`). The base runs
use this venv with DIR first on PYTHONPATH, so the bench and the node processes it starts
import DIR's packages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from bench.results import verify_microseconds

BENCH = [sys.executable, "-m", "node.cli", "bench"]


class Variant(NamedTuple):
    """The code a run uses: this checkout (`tree` None) or another one (A/B)."""

    label: str  # "" without --base, else "@base" or "@this"
    tree: Path | None


def variants(base: Path | None) -> list[Variant]:
    if base is None:
        return [Variant("", None)]
    return [Variant("@base", base.resolve()), Variant("@this", None)]


def pair_order(index: int, sides: list[Variant]) -> list[Variant]:
    """Run `index` of a setup: A/B pairs alternate which side goes first, so a machine that
    speeds up or slows down during a set does not favour one side."""
    return sides if index % 2 == 0 else sides[::-1]


def bench_invocation(
    setup: str, out: Path, args: argparse.Namespace, variant: Variant
) -> tuple[list[str], Path | None, dict[str, str] | None]:
    """(command, working directory, environment) of one `seoulchain bench` run."""
    consensus, nodes, rate = setup.split(":")
    command = [
        *BENCH,
        "--consensus", consensus, "--nodes", nodes, "--rate", rate,
        "--duration", str(args.duration), "--out", str(out.resolve()), "--no-progress",
        "--txs-max", str(math.ceil(float(rate) * args.duration)),  # load the whole duration
    ]  # fmt: skip
    if args.no_plots:
        command.append("--no-plots")
    if variant.tree is None:
        return command, None, None
    pythonpath = os.pathsep.join(filter(None, (str(variant.tree), os.environ.get("PYTHONPATH"))))
    return command, variant.tree, {**os.environ, "PYTHONPATH": pythonpath}


def drop_chain_stores(out: Path) -> int:
    """Delete the chain stores (`cluster/node*/data`) a run left under `out`; returns the
    bytes freed. Everything the tables use is in results.json and report.md."""
    freed = 0
    for data in sorted(out.glob("cluster/node*/data")):
        freed += sum(path.stat().st_size for path in data.rglob("*") if path.is_file())
        shutil.rmtree(data)
    return freed


def _run_once(
    setup: str, index: int, args: argparse.Namespace, variant: Variant
) -> dict[str, object]:
    consensus, nodes, rate = setup.split(":")
    side = variant.label.lstrip("@")
    out = Path(args.out) / f"{consensus}{nodes}-{rate}-{index}{'-' + side if side else ''}"
    load_before = os.getloadavg()[0]
    verify_us = verify_microseconds()  # before the run: the bench measures it again
    command, cwd, env = bench_invocation(setup, out, args, variant)
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=cwd, env=env)
    finally:
        if not args.keep_data:
            drop_chain_stores(out)
    result = json.loads((out / "results.json").read_text())
    run = result["runs"][0]
    latency = run["latency"]
    nodes_doc = run["nodes"]
    return {
        "setup": setup + variant.label,
        "load_before": round(load_before, 2),
        "verify_us": round(verify_us, 1),
        "committed_tps": run["throughput_tps"],
        "sent_tps": run["sent_tps"],
        "block_txs_mean": run["block_txs_mean"],
        "p50_ms": latency["p50_s"] * 1e3,
        "p90_ms": latency["p90_s"] * 1e3,
        "p99_ms": latency["p99_s"] * 1e3,
        "max_ms": latency["max_s"] * 1e3,
        "loadgen_cpu_share": run["loadgen_cpu_share"],
        "rss_max_mb": max(node["rss_bytes_max"] for node in nodes_doc.values()) / 2**20,
        "cpu_us_per_tx_node": 1e6
        * statistics.mean(node["cpu_s_per_committed_tx"] for node in nodes_doc.values()),
        "view_changes": max(node["metrics"]["view_changes"] for node in nodes_doc.values()),
        "rejected": sum(run["rejected"].values()),
        "agree": run["consistency"]["same_app_hash"],
    }


def _median_row(rows: list[dict[str, object]]) -> dict[str, object]:
    def med(key: str) -> float:
        return statistics.median(float(row[key]) for row in rows)  # type: ignore[arg-type]

    return {
        "setup": rows[0]["setup"],
        "runs": len(rows),
        "committed_tps": [round(float(r["committed_tps"]), 1) for r in rows],  # type: ignore[arg-type]
        "committed_tps_median": round(med("committed_tps"), 1),
        "sent_tps_median": round(med("sent_tps"), 1),
        "block_txs_mean_median": round(med("block_txs_mean"), 1),
        "p50_ms_median": round(med("p50_ms"), 1),
        "p90_ms_median": round(med("p90_ms"), 1),
        "p99_ms_median": round(med("p99_ms"), 1),
        "max_ms_median": round(med("max_ms"), 1),
        "p99_ms": [round(float(r["p99_ms"]), 1) for r in rows],  # type: ignore[arg-type]
        "cpu_us_per_tx_node_median": round(med("cpu_us_per_tx_node"), 1),
        "cpu_us_per_tx_node": [round(float(r["cpu_us_per_tx_node"]), 1) for r in rows],  # type: ignore[arg-type]
        "loadgen_cpu_share_median": round(med("loadgen_cpu_share"), 3),
        "rss_max_mb_max": round(max(float(r["rss_max_mb"]) for r in rows), 1),  # type: ignore[arg-type]
        "view_changes_max": max(float(r["view_changes"]) for r in rows),  # type: ignore[arg-type]
        "load_before": [r["load_before"] for r in rows],
        "verify_us": [r["verify_us"] for r in rows],
        "all_agree": all(bool(r["agree"]) for r in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setups", nargs="+", help="CONSENSUS:NODES:RATE, e.g. pbft:4:4000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--out", default="bench-results/medians")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--base", type=Path, help="A/B against the code in this checkout")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep each run's chain stores (GBs per run)"
    )
    args = parser.parse_args()
    sides = variants(args.base)
    by_setup: dict[str, list[dict[str, object]]] = {
        setup + side.label: [] for setup in args.setups for side in sides
    }
    for index in range(args.runs):  # interleaved, so slow drifts in machine load hit all
        for setup in args.setups:
            for side in pair_order(index, sides):
                row = _run_once(setup, index, args, side)
                by_setup[setup + side.label].append(row)
                print(json.dumps(row), flush=True)
    summary = [_median_row(rows) for rows in by_setup.values()]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    for row in summary:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
