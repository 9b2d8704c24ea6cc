"""One measured run against a ready cluster: subscribe, sample, load, drain, check, summarise.

Order, and why:
1. Open the NewBlock streams first (node0, or every node in a fault run) and only then start
   the clock, so no commit can happen before the bench is listening.
2. Scrape every node's /metrics and /proc once ("before"), then once a second.
3. Send the load (open or closed loop) for --duration; the first --warmup seconds are sent
   but left out of the steady-state figures (throughput window and latency percentiles).
4. Drain: wait up to --drain seconds for txs still pending to commit.
5. Scrape "after"; check every live node reached the same height, block hash and app hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench import faults, kinds, outcomes, stats
from bench.cluster import Cluster
from bench.ledger import Ledger
from bench.loadgen import (
    INFLIGHT_CALLS_MAX,
    CommitWaiters,
    RunClock,
    SenderStats,
    Targets,
    closed_loop,
    follow_blocks,
    open_loop,
)
from bench.procstat import self_cpu_s
from bench.progress import Progress
from bench.sampler import Sampler
from bench.txgen import SignedTx
from node.client import RpcClient, RpcError, RpcTransportError

log = logging.getLogger(__name__)

STREAM_OPEN_TIMEOUT_S = 10.0
DRAIN_POLL_S = 0.1
CONVERGE_TIMEOUT_S = 20.0
SEND_GRACE_S = 60.0  # beyond --duration, for answers to calls already sent
BLOCKS_IN_RESULTS_MAX = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    mode: str  # "open" | "closed"
    duration_s: float
    warmup_s: float
    drain_s: float
    rate_tps: float | None = None  # open loop
    concurrency: int | None = None  # closed loop
    interval_s: float = 0.01
    fault: faults.FaultSpec | None = None
    subscribe_all: bool = False
    progress: bool = True
    label: str = ""

    def offered(self) -> str:
        if self.mode == "open":
            return f"{self.rate_tps:g} tx/s"
        return f"concurrency {self.concurrency}"


def _clients(cluster: Cluster) -> dict[str, RpcClient]:
    per_node = INFLIGHT_CALLS_MAX // max(1, len(cluster.nodes)) + 8
    return {
        node.name: RpcClient(node.rpc_url, timeout_s=30.0, connections_max=per_node)
        for node in cluster.nodes
    }


async def measure(cluster: Cluster, txs: Sequence[SignedTx], spec: RunSpec) -> dict[str, Any]:
    clients = _clients(cluster)
    try:
        return await _measure(cluster, clients, txs, spec)
    finally:
        for client in clients.values():
            await client.close()


class RunError(Exception):
    """A run could not be measured (e.g. the event stream never opened)."""


@dataclass(slots=True)
class _Run:
    """What one measurement holds while it runs."""

    spec: RunSpec
    ledger: Ledger
    clock: RunClock
    waiters: CommitWaiters
    sender: SenderStats
    background: list[asyncio.Task[Any]]


async def _measure(
    cluster: Cluster, clients: dict[str, RpcClient], txs: Sequence[SignedTx], spec: RunSpec
) -> dict[str, Any]:
    run = _Run(
        spec, Ledger([tx.hash_hex for tx in txs]), RunClock(), CommitWaiters(), SenderStats(), []
    )
    try:
        await _open_streams(cluster, clients, run)
        async with Sampler(cluster.nodes, clock_zero=run.clock.zero) as sampler:
            return await _measure_with(cluster, clients, txs, run, sampler)
    finally:
        for task in run.background:
            task.cancel()
        await asyncio.gather(*run.background, return_exceptions=True)


async def _open_streams(cluster: Cluster, clients: dict[str, RpcClient], run: _Run) -> None:
    """NewBlock streams first: nothing may commit before the bench listens."""
    subscribe_all = run.spec.subscribe_all or run.spec.fault is not None
    followed = cluster.nodes if subscribe_all else cluster.nodes[:1]
    readies = []
    for node in followed:
        ready = asyncio.Event()
        readies.append(ready)
        follower = follow_blocks(
            node, clients[node.name], run.ledger, run.clock, run.waiters, ready
        )
        run.background.append(asyncio.create_task(follower))
    try:
        async with asyncio.timeout(STREAM_OPEN_TIMEOUT_S):
            await asyncio.gather(*(ready.wait() for ready in readies))
    except TimeoutError:
        raise RunError(f"event streams not open after {STREAM_OPEN_TIMEOUT_S:g} s") from None
    if any(task.done() for task in run.background):
        raise RunError("a NewBlock event stream failed to open (see the log above)")


async def _measure_with(
    cluster: Cluster,
    clients: dict[str, RpcClient],
    txs: Sequence[SignedTx],
    run: _Run,
    sampler: Sampler,
) -> dict[str, Any]:
    spec, ledger, clock = run.spec, run.ledger, run.clock
    sampler.proc_snapshot(sampler.proc_before)
    await sampler.snapshot(sampler.before)
    clock.start()
    sampler.reset_zero(clock.zero)
    cpu_start_s = self_cpu_s()
    stop = asyncio.Event()
    run.background.append(asyncio.create_task(sampler.run(stop)))
    progress = Progress(ledger, clock, spec, enabled=spec.progress, stream=sys.stderr)
    run.background.append(asyncio.create_task(progress.run(stop)))
    record = faults.FaultRecord(spec.fault) if spec.fault else None
    if spec.fault is not None and record is not None:
        injection = faults.inject(spec.fault, cluster, clients, clock.now, record)
        run.background.append(asyncio.create_task(injection))
    try:
        await _send(cluster, clients, txs, run)
        send_end_s = clock.now()
        await _drain(ledger, clock, deadline_s=send_end_s + spec.drain_s)
        drain_end_s = clock.now()
    finally:
        stop.set()
        progress.finish()
    loadgen_cpu_s = self_cpu_s() - cpu_start_s
    await sampler.snapshot(sampler.after)
    sampler.proc_snapshot(sampler.proc_after)
    consistency = await check_consistency(cluster, clients)
    execution = await _execution_outcomes(cluster, clients, ledger, txs)
    return summarise(
        spec,
        ledger,
        run.sender,
        sampler,
        send_end_s=send_end_s,
        drain_end_s=drain_end_s,
        loadgen_cpu_s=loadgen_cpu_s,
        fault=faults.analyse(record, ledger.blocks, send_end_s=send_end_s) if record else None,
        consistency=consistency,
        kinds_by_index=[tx.kind for tx in txs],
        execution=execution,
    )


async def _execution_outcomes(
    cluster: Cluster, clients: dict[str, RpcClient], ledger: Ledger, txs: Sequence[SignedTx]
) -> outcomes.Outcomes | None:
    """Execution results of our committed txs, read from the first live node."""
    alive = cluster.alive()
    if not alive:
        return None
    return await outcomes.check(clients[alive[0].name], ledger, [tx.kind for tx in txs])


async def _send(
    cluster: Cluster, clients: dict[str, RpcClient], txs: Sequence[SignedTx], run: _Run
) -> None:
    """The load, bounded in time: a sender still busy SEND_GRACE_S after --duration is
    stopped and the run is reported with what it did (sender.timed_out)."""
    spec = run.spec
    targets = Targets(cluster.nodes, clients)
    try:
        async with asyncio.timeout(spec.duration_s + SEND_GRACE_S):
            if spec.mode == "open":
                assert spec.rate_tps is not None
                await open_loop(
                    targets,
                    txs,
                    run.ledger,
                    run.clock,
                    run.sender,
                    rate_tps=spec.rate_tps,
                    duration_s=spec.duration_s,
                    interval_s=spec.interval_s,
                )
                return
            assert spec.mode == "closed"
            assert spec.concurrency is not None
            await closed_loop(
                targets,
                txs,
                run.ledger,
                run.clock,
                run.waiters,
                run.sender,
                concurrency=spec.concurrency,
                duration_s=spec.duration_s,
            )
    except TimeoutError:
        run.sender.timed_out = True
        log.warning("sender still busy %g s after the run's end; stopped", SEND_GRACE_S)


async def _drain(ledger: Ledger, clock: RunClock, *, deadline_s: float) -> None:
    """Poll (bounded by the deadline) until nothing we sent is still pending."""
    polls_max = int(max(0.0, deadline_s - clock.now()) / DRAIN_POLL_S) + 1
    for _ in range(polls_max):
        if not ledger.pending or clock.now() >= deadline_s:
            return
        await asyncio.sleep(DRAIN_POLL_S)


async def check_consistency(cluster: Cluster, clients: dict[str, RpcClient]) -> dict[str, Any]:
    """Wait (bounded) until every live node reports the same height, then compare block
    hash and app hash at that height."""
    statuses: dict[str, dict[str, Any]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONVERGE_TIMEOUT_S
    while True:
        statuses = await _sync_infos(cluster, clients)
        heights = {info.get("latest_block_height") for info in statuses.values()}
        if len(heights) <= 1 or loop.time() > deadline:
            break
        await asyncio.sleep(0.25)
    block_hashes = {info.get("latest_block_hash") for info in statuses.values()}
    app_hashes = {info.get("latest_app_hash") for info in statuses.values()}
    return {
        "nodes_checked": sorted(statuses),
        "heights": {name: info.get("latest_block_height") for name, info in statuses.items()},
        "same_height": len(heights) == 1,
        "same_block_hash": len(heights) == 1 and len(block_hashes) == 1,
        "same_app_hash": len(heights) == 1 and len(app_hashes) == 1,
        "app_hash": next(iter(app_hashes)) if len(app_hashes) == 1 else None,
    }


async def _sync_infos(cluster: Cluster, clients: dict[str, RpcClient]) -> dict[str, Any]:
    infos: dict[str, Any] = {}
    for node in cluster.alive():
        with contextlib.suppress(RpcError, RpcTransportError):
            status = await clients[node.name].call("status", timeout_s=5.0)
            if isinstance(status, dict) and isinstance(status.get("sync_info"), dict):
                infos[node.name] = status["sync_info"]
    return infos


def summarise(
    spec: RunSpec,
    ledger: Ledger,
    sender: SenderStats,
    sampler: Sampler,
    *,
    send_end_s: float,
    drain_end_s: float,
    loadgen_cpu_s: float,
    fault: dict[str, Any] | None,
    consistency: dict[str, Any],
    kinds_by_index: Sequence[str] | None = None,
    execution: outcomes.Outcomes | None = None,
) -> dict[str, Any]:
    """The run's entry in results.json (docs/BENCHMARKS-HOWTO.md describes every field)."""
    seconds = max(1.0, drain_end_s)
    nodes = sampler.node_figures(ledger.committed)
    node_cpu = [entry["cpu_s"] for entry in nodes.values() if "cpu_s" in entry]
    return {
        "label": spec.label,
        "mode": spec.mode,
        "offered_tps": spec.rate_tps,
        "concurrency": spec.concurrency,
        "duration_s": spec.duration_s,
        "warmup_s": spec.warmup_s,
        "send_end_s": send_end_s,
        "drain_end_s": drain_end_s,
        **_counts(ledger),
        **_rates_and_latency(spec, ledger, send_end_s=send_end_s, drain_end_s=drain_end_s),
        "sender": {
            "calls": sender.calls,
            "call_errors": sender.call_errors,
            "stalls": sender.stalls,
            "behind_s_max": sender.behind_s_max,
            "commit_timeouts": sender.commit_timeouts,
            "errors_by_kind": sender.errors_by_kind,
            "timed_out": sender.timed_out,
        },
        "loadgen_cpu_s": loadgen_cpu_s,
        "loadgen_cpu_share": loadgen_cpu_s / seconds,
        "nodes": nodes,
        "node_cpu_s_per_committed_tx": sum(node_cpu) / ledger.committed
        if node_cpu and ledger.committed
        else None,
        "fault": fault,
        "consistency": consistency,
        "execution": execution.to_json() if execution else None,
        "kinds": kinds.kind_figures(
            ledger, kinds_by_index, warmup_s=spec.warmup_s, outcomes=execution
        )
        if kinds_by_index is not None
        else None,
        "series": _series(ledger, sampler, seconds=seconds),
    }


def _counts(ledger: Ledger) -> dict[str, Any]:
    return {
        "sent": ledger.sent,
        "committed": ledger.committed,
        "pending_at_end": ledger.pending,
        "rejected": dict(sorted(ledger.rejected.items())),
        "reject_samples": ledger.reject_samples,
        "foreign_txs": ledger.foreign_txs,
        "malformed_events": ledger.malformed_events,
        "streams_ended": ledger.streams_ended,
        "blocks": len(ledger.blocks),
        "block_txs_mean": sum(b.txs for b in ledger.blocks) / len(ledger.blocks)
        if ledger.blocks
        else None,
        "height_max": ledger.height_max,
    }


def _rates_and_latency(
    spec: RunSpec, ledger: Ledger, *, send_end_s: float, drain_end_s: float
) -> dict[str, Any]:
    """Steady state: txs sent, and commits seen, in [warm-up, end of sending)."""
    window_end_s = max(send_end_s, spec.warmup_s + 1e-9)
    steady = ledger.latencies_s(sent_after_s=spec.warmup_s)
    latency = stats.summarize(steady)
    latency_all = stats.summarize(ledger.latencies_s())
    sent_times = [t for t in ledger.actual_s if t is not None]
    return {
        "throughput_tps": stats.rate_in_window(
            ledger.commit_times_s(), start_s=spec.warmup_s, end_s=window_end_s
        ),
        "sent_tps": stats.rate_in_window(sent_times, start_s=spec.warmup_s, end_s=window_end_s),
        "throughput_overall_tps": ledger.committed / drain_end_s if drain_end_s > 0 else 0.0,
        "latency": latency.to_json() if latency else None,
        "latency_all": latency_all.to_json() if latency_all else None,
        "latency_cdf": stats.cdf(steady),
    }


def _series(ledger: Ledger, sampler: Sampler, *, seconds: float) -> dict[str, Any]:
    offered = stats.per_second_counts(
        [t for t in ledger.ideal_s if t is not None], duration_s=seconds
    )
    sent = stats.per_second_counts(
        [t for t in ledger.actual_s if t is not None], duration_s=seconds
    )
    committed = stats.per_second_counts(ledger.commit_times_s(), duration_s=seconds)
    return {
        "per_second": [
            {
                "t_s": second,
                "offered": offered[second],
                "sent": sent[second],
                "committed": committed[second],
            }
            for second in range(len(sent))
        ],
        "blocks": [
            [round(b.at_s, 4), b.height, b.txs, b.ours]
            for b in ledger.blocks[:BLOCKS_IN_RESULTS_MAX]
        ],
        "nodes": {name: series.points for name, series in sampler.series.items()},
    }
