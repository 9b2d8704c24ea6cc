"""results.json: the stable, versioned record of a bench invocation.

Top level (docs/BENCHMARKS-HOWTO.md §results.json has every field):
    schema: "seoulchain-bench"      version: SCHEMA_VERSION (bumped on any breaking change)
    started_at / finished_at: ISO-8601 UTC      command: argv as given
    config: the options the bench ran with      environment: machine and what else ran
    cluster: nodes (name, rpc, metrics), consensus, launched or attached
    signing: txs, seconds, workers, tx size      runs: one summary per measured run
    sweep: null, or {points, saturation_index, saturation_offered_tps}
    prometheus: null, or {url, kept, figures per run label}
    teardown: what happened to the cluster
A reader must accept unknown extra fields (additions do not bump the version; they bump
`minor_version`, SCHEMA_MINOR_VERSION below).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import stats
from protocol.crypto import SigningKey, verify

log = logging.getLogger(__name__)

SCHEMA_NAME = "seoulchain-bench"
SCHEMA_VERSION = 1
# Additions within version 1 (readers ignore unknown fields): 1 = `minor_version`, `setup`,
# `signing.mix`, `runs[].kinds`, `runs[].execution` (--mix, issue 7); 2 = per node
# `metrics.propose_to_commit_p50_s` / `_p99_s` and `metrics.store_commit_p50_s` / `_p99_s`;
# 3 = per node `metrics.signature_checks` and `metrics.signature_checks_per_committed_tx`;
# 4 = per node `metrics.consensus_persist_p50_s` / `_p99_s`, `metrics.consensus_persists`
# and `metrics.consensus_persist_outputs_mean`; 5 = `environment.verify_us`.
SCHEMA_MINOR_VERSION = 5
REQUIRED_TOP_LEVEL = (
    "schema",
    "version",
    "started_at",
    "finished_at",
    "command",
    "config",
    "environment",
    "cluster",
    "signing",
    "runs",
    "sweep",
    "prometheus",
    "teardown",
)
REQUIRED_RUN = (
    "label",
    "mode",
    "offered_tps",
    "concurrency",
    "duration_s",
    "warmup_s",
    "sent",
    "committed",
    "rejected",
    "throughput_tps",
    "latency",
    "latency_cdf",
    "loadgen_cpu_s",
    "nodes",
    "fault",
    "consistency",
    "series",
)
LOAD_AVERAGE_FIELDS = 3
PROCESS_LIST_MAX = 15


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def environment() -> dict[str, Any]:
    """The machine and what else ran on it: figures from a shared 2-core box mean little
    without the load average, the busiest other processes and the machine's speed (a
    virtual machine's drifts by tens of percent within an hour) next to them."""
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg())[:LOAD_AVERAGE_FIELDS],
        "busiest_processes": busiest_processes(),
        "verify_us": round(verify_microseconds(), 1),
    }


def verify_microseconds() -> float:
    """The machine's speed right now: microseconds per Ed25519 verify (libsodium, the node's
    floor cost per tx), median of 5 rounds of 400. Every throughput figure moves with it."""
    signing_key = SigningKey.from_secret(b"bench calibration")
    domain, payload = b"calibration", b"x" * 200
    signature = signing_key.sign(domain, payload)
    public_key = signing_key.public_key
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(400):
            assert verify(public_key, domain, payload, signature)
        rounds.append((time.perf_counter() - started) / 400 * 1e6)
    return statistics.median(rounds)


def busiest_processes() -> list[dict[str, Any]]:
    """The processes with the most CPU time so far (from /proc), as a hint of what else
    shared the machine. Best effort: unreadable entries are skipped."""
    found: list[tuple[int, int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_text = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        name = stat_text[stat_text.find("(") + 1 : stat_text.rfind(")")]
        fields = stat_text.rpartition(")")[2].split()
        try:
            ticks = int(fields[11]) + int(fields[12])
        except (IndexError, ValueError):
            continue
        found.append((ticks, int(entry.name), name))
    found.sort(reverse=True)
    return [
        {"pid": pid, "name": name, "cpu_ticks": ticks}
        for ticks, pid, name in found[:PROCESS_LIST_MAX]
    ]


def sweep_section(runs: list[dict[str, Any]]) -> dict[str, Any]:
    points = [
        stats.SweepPoint(
            offered_tps=float(run["offered_tps"] or 0.0),
            committed_tps=float(run["throughput_tps"]),
            p50_s=run["latency"]["p50_s"] if run["latency"] else None,
            p99_s=run["latency"]["p99_s"] if run["latency"] else None,
        )
        for run in runs
    ]
    index = stats.saturation_index(points)
    return {
        "points": [
            {
                "offered_tps": p.offered_tps,
                "committed_tps": p.committed_tps,
                "p50_s": p.p50_s,
                "p99_s": p.p99_s,
            }
            for p in points
        ],
        "saturation_index": index,
        "saturation_offered_tps": points[index].offered_tps if index is not None else None,
        "max_committed_tps": max((p.committed_tps for p in points), default=0.0),
    }


def validate(document: dict[str, Any]) -> list[str]:
    """Problems with a results document (empty when it matches the schema)."""
    problems = [
        f"missing top-level field {name!r}" for name in REQUIRED_TOP_LEVEL if name not in document
    ]
    if document.get("schema") != SCHEMA_NAME:
        problems.append(f"schema is {document.get('schema')!r}, want {SCHEMA_NAME!r}")
    if document.get("version") != SCHEMA_VERSION:
        problems.append(f"version is {document.get('version')!r}, want {SCHEMA_VERSION}")
    runs = document.get("runs")
    if not isinstance(runs, list):
        return [*problems, "runs is not a list"]
    for position, run in enumerate(runs):
        problems.extend(
            f"runs[{position}] missing {name!r}" for name in REQUIRED_RUN if name not in run
        )
    return problems


def write(path: Path, document: dict[str, Any]) -> None:
    problems = validate(document)
    assert not problems, f"results.json would not match its schema: {problems}"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(path)  # readers never see half a file
