"""PNG plots of a results document (matplotlib, Agg backend: no display needed).

- latency_cdf.png: the steady-state commit latency CDF of every run;
- throughput.png: sent and committed tx per second over each run's time;
- mempool_blocks.png: each node's mempool size (from /metrics, every second) and the
  size of every block seen, over each run's time;
- sweep.png: the throughput–latency curve of a rate sweep (p50 and p99 against committed
  tx/s, one point per offered rate, the saturation point marked).
Returns the file names written, so the report can link them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = logging.getLogger(__name__)

DPI = 110


def draw_all(document: dict[str, Any], out: Path) -> list[str]:
    written = []
    runs = document["runs"]
    if any(run.get("latency_cdf") for run in runs):
        written.append(_latency_cdf(runs, out / "latency_cdf.png"))
    if any(run["series"]["per_second"] for run in runs):
        written.append(_throughput(runs, out / "throughput.png"))
    if any(run["series"]["blocks"] for run in runs):
        written.append(_mempool_blocks(runs, out / "mempool_blocks.png"))
    if document.get("sweep"):
        written.append(_sweep(document["sweep"], out / "sweep.png"))
    return written


def _latency_cdf(runs: list[dict[str, Any]], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        points = run.get("latency_cdf") or []
        if points:
            axes.plot([p[0] * 1000 for p in points], [p[1] for p in points], label=run["label"])
    axes.set_xlabel("commit latency (ms)")
    axes.set_ylabel("fraction of txs")
    axes.set_xscale("log")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title("Commit latency CDF (steady state)")
    return _save(figure, path)


def _throughput(runs: list[dict[str, Any]], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        series = run["series"]["per_second"]
        seconds = [point["t_s"] for point in series]
        axes.plot(seconds, [p["committed"] for p in series], label=f"{run['label']} committed")
        axes.plot(
            seconds,
            [p["sent"] for p in series],
            linestyle="--",
            alpha=0.6,
            label=f"{run['label']} sent",
        )
        fault = run.get("fault") or {}
        if fault.get("killed_at_s") is not None:
            axes.axvline(fault["killed_at_s"], color="red", linestyle=":", label="leader killed")
    axes.set_xlabel("time since run start (s)")
    axes.set_ylabel("tx per second")
    axes.grid(visible=True, alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title("Throughput over time")
    return _save(figure, path)


def _mempool_blocks(runs: list[dict[str, Any]], path: Path) -> str:
    figure, (pool, blocks) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for run in runs:
        for node, points in run["series"]["nodes"].items():
            shown = [p for p in points if "mempool_size" in p]
            pool.plot(
                [p["t_s"] for p in shown],
                [p["mempool_size"] for p in shown],
                label=f"{run['label']} {node}",
            )
        seen = run["series"]["blocks"]
        blocks.scatter([b[0] for b in seen], [b[2] for b in seen], s=4, label=run["label"])
    pool.set_ylabel("mempool size (txs)")
    pool.grid(visible=True, alpha=0.3)
    pool.legend(fontsize="x-small")
    pool.set_title("Mempool and block sizes over time")
    blocks.set_xlabel("time since run start (s)")
    blocks.set_ylabel("txs per block")
    blocks.grid(visible=True, alpha=0.3)
    blocks.legend(fontsize="x-small")
    return _save(figure, path)


def _sweep(sweep: dict[str, Any], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    points = [p for p in sweep["points"] if p["p50_s"] is not None]
    committed = [p["committed_tps"] for p in points]
    axes.plot(committed, [p["p50_s"] * 1000 for p in points], marker="o", label="p50")
    axes.plot(committed, [p["p99_s"] * 1000 for p in points], marker="s", label="p99")
    for point in points:
        axes.annotate(
            f"{point['offered_tps']:g}",
            (point["committed_tps"], point["p99_s"] * 1000),
            fontsize="x-small",
            textcoords="offset points",
            xytext=(3, 3),
        )
    index = sweep.get("saturation_index")
    if index is not None and sweep["points"][index]["p99_s"] is not None:
        saturated = sweep["points"][index]
        axes.scatter(
            [saturated["committed_tps"]],
            [saturated["p99_s"] * 1000],
            s=150,
            facecolors="none",
            edgecolors="red",
            label="saturation",
        )
    axes.set_xlabel("committed tx/s")
    axes.set_ylabel("commit latency (ms)")
    axes.set_yscale("log")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title("Throughput–latency (labels: offered tx/s)")
    return _save(figure, path)


def _save(figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path.name
