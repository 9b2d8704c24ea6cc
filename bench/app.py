"""`seoulchain bench`: the whole invocation, from cluster to report.

1. Get a cluster: launch a fresh one in OUT/cluster (or attach: --attach DIR, --rpc URLs).
2. Optionally start a real Prometheus server scraping it (--prometheus).
3. Wait until it is ready: every node answers status, and one tx commits end to end.
4. Sign every tx of every planned run in a process pool (timed on its own).
5. Run the plan: one open-loop run (--rate), one closed-loop run (--concurrency), or one
   open-loop run per rate of --sweep, letting mempools drain between runs.
6. Write OUT/results.json, PNG plots and OUT/report.md, print the report.
7. Tear down only what the bench started (cluster, Prometheus), even after an error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench import cluster as cluster_module
from bench import faults, mixload, plots, prom, report, results, runner, setup, txgen
from bench.cluster import Cluster, ClusterError
from node.client import RpcClient, RpcError, RpcTransportError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0
QUIET_TIMEOUT_S = 30.0
EXPIRY_HEIGHTS = 10_000_000  # bench txs must not expire during any run
CLOSED_LOOP_TPS_PER_WORKER_MAX = 100  # a worker waits for each commit: far below this
READY_TXS = 4


class BenchError(Exception):
    """A user-facing failure: printed as one line, exit 1."""


@dataclass(frozen=True, slots=True)
class Plan:
    specs: list[runner.RunSpec]
    counts: list[int]  # txs to sign per run
    sweep: bool


def plan_runs(args: argparse.Namespace) -> Plan:
    duration_s = float(args.duration)
    warmup_s = float(args.warmup) if args.warmup is not None else min(5.0, duration_s / 5)
    fault = faults.parse_fault(args.fault) if args.fault else None
    common: dict[str, Any] = {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "drain_s": float(args.drain),
        "interval_s": args.batch_ms / 1000.0,
        "fault": fault,
        "subscribe_all": args.subscribe == "all",
        "progress": not args.no_progress,
    }
    if args.sweep:
        rates = [float(rate) for rate in args.sweep]
        specs = [
            runner.RunSpec(mode="open", rate_tps=rate, label=f"open {rate:g}/s", **common)
            for rate in rates
        ]
        counts = [open_loop_count(rate, duration_s, args.txs_max) for rate in rates]
        return Plan(specs, counts, sweep=True)
    if args.concurrency:
        spec = runner.RunSpec(
            mode="closed",
            concurrency=args.concurrency,
            label=f"closed x{args.concurrency}",
            **common,
        )
        count = args.concurrency * math.ceil(duration_s) * CLOSED_LOOP_TPS_PER_WORKER_MAX
        return Plan([spec], [min(args.txs_max, count)], sweep=False)
    spec = runner.RunSpec(mode="open", rate_tps=args.rate, label=f"open {args.rate:g}/s", **common)
    return Plan([spec], [open_loop_count(args.rate, duration_s, args.txs_max)], sweep=False)


def open_loop_count(rate_tps: float, duration_s: float, txs_max: int) -> int:
    """Txs to sign for an open loop: the whole duration at the rate, unless --txs-max is
    lower, in which case the load stops early and the run is shorter than asked — said
    aloud, since a "60 s" figure measured over 40 s of load is a different figure."""
    wanted = math.ceil(rate_tps * duration_s)
    if wanted <= txs_max:
        return wanted
    log.warning(
        "--txs-max %d stops the load at %.1f s of the %.1f s asked at %g tx/s; "
        "pass --txs-max %d to load the whole duration",
        txs_max, txs_max / rate_tps, duration_s, rate_tps, wanted,
    )  # fmt: skip
    return txs_max


def obtain_cluster(args: argparse.Namespace, out: Path) -> Cluster:
    if args.attach:
        return cluster_module.attach_directory(args.attach)
    if args.rpc:
        urls = [url for text in args.rpc for url in text.split(",") if url]
        metrics = [url for text in args.metrics or [] for url in text.split(",") if url]
        return cluster_module.attach_urls(urls, metrics)
    directory = out / "cluster"
    try:
        cluster_module.clear_previous(directory)
    except ClusterError as error:
        raise BenchError(str(error)) from None
    nodes = 1 if args.consensus == "solo" else args.nodes
    rng = random.Random(args.seed)
    log.info("launching %d %s nodes in %s", nodes, args.consensus, directory)
    return cluster_module.launch(
        directory, nodes=nodes, consensus=args.consensus, agencies=args.agencies, rng=rng
    )


def agency_keys(args: argparse.Namespace, cluster: Cluster) -> list[Any]:
    folder = args.agencies_dir or cluster.directory
    if folder is None:
        raise BenchError("attached by --rpc: give --agencies-dir with the agency key files")
    try:
        return txgen.load_agency_keys(Path(folder))
    except (txgen.TxGenError, OSError) as error:
        raise BenchError(str(error)) from None


async def wait_ready(cluster: Cluster, ready_txs: list[txgen.SignedTx]) -> float:
    """Every node answers status, then one tx commits through node0; seconds it took."""
    started = time.perf_counter()
    try:
        await _wait_ready(cluster, ready_txs)
    except TimeoutError:
        raise BenchError(f"cluster not ready after {READY_TIMEOUT_S:g} s") from None
    return time.perf_counter() - started


async def _wait_ready(cluster: Cluster, ready_txs: list[txgen.SignedTx]) -> None:
    async with asyncio.timeout(READY_TIMEOUT_S):
        for node in cluster.nodes:
            async with RpcClient(node.rpc_url, timeout_s=5.0) as client:
                await _poll(lambda c=client: c.status())
        async with RpcClient(cluster.nodes[0].rpc_url, commit_timeout_s=20.0) as client:
            for tx in ready_txs:
                answer = await _poll(
                    lambda c=client, t=tx: c.call("broadcast_tx_commit", {"tx": t.text})
                )
                _check_ready_answer(answer)


def _check_ready_answer(answer: Any) -> None:
    """A refused probe tx means every bench tx would be refused the same way (wrong chain,
    an agency without the notary role, ...): stop now with the node's reason."""
    if not isinstance(answer, dict):
        raise BenchError(f"broadcast_tx_commit: unexpected answer {str(answer)[:200]}")
    check = answer.get("check_tx") or {}
    result = answer.get("tx_result") or {}
    for stage, part in (("refused", check), ("failed", result)):
        if isinstance(part, dict) and part.get("code", 0) != 0:
            raise BenchError(
                f"probe tx {stage}: code {part.get('code')} {part.get('codespace', '')} "
                f"{part.get('log', '')}".strip()
            )


async def _poll(call: Any) -> Any:
    """Retry a call every half second until it answers (the caller bounds the time)."""
    while True:
        try:
            return await call()
        except (RpcError, RpcTransportError) as error:
            log.info("not ready yet: %s", error)
            await asyncio.sleep(0.5)


async def wait_quiet(cluster: Cluster) -> None:
    """Until every live node's mempool is empty (bounded): runs must not inherit load."""
    deadline = time.monotonic() + QUIET_TIMEOUT_S
    for node in cluster.alive():
        async with RpcClient(node.rpc_url, timeout_s=5.0) as client:
            while time.monotonic() < deadline:
                try:
                    status = await client.status()
                except (RpcError, RpcTransportError):
                    break
                if int(status.get("mempool", {}).get("size", 0)) == 0:
                    break
                await asyncio.sleep(0.25)


async def chain_context(cluster: Cluster) -> tuple[str, int, str | None]:
    """(chain id, latest height, consensus kind) from the first node."""
    async with RpcClient(cluster.nodes[0].rpc_url, timeout_s=10.0) as client:
        try:
            genesis = await _poll_bounded(client, "genesis")
            status = await _poll_bounded(client, "status")
        except TimeoutError:
            raise BenchError(f"{cluster.nodes[0].rpc_url}: no answer") from None
    chain_id = genesis.get("genesis", {}).get("chain_id")
    if not isinstance(chain_id, str):
        raise BenchError("genesis answer has no chain_id")
    kind = status.get("consensus", {}).get("kind")
    height = int(status["sync_info"]["latest_block_height"])
    return chain_id, height, kind if isinstance(kind, str) else None


async def _poll_bounded(client: RpcClient, method: str) -> Any:
    async with asyncio.timeout(READY_TIMEOUT_S):
        return await _poll(lambda: client.call(method))


@dataclass(frozen=True, slots=True)
class Signed:
    per_run: list[list[txgen.SignedTx]]
    ready_txs: list[txgen.SignedTx]
    section: dict[str, Any]  # results.json `signing`
    mix: mixload.MixLoad | None  # --mix: the setup to commit before the runs


def sign(args: argparse.Namespace, cluster: Cluster, plan: Plan) -> Signed:
    keys = agency_keys(args, cluster)
    chain_id, height, consensus = asyncio.run(chain_context(cluster))
    spec = txgen.LoadSpec(
        chain_id=chain_id,
        expiry_height=height + EXPIRY_HEIGHTS,
        tx_bytes=args.tx_bytes,
        run_tag=f"bench/{time.time_ns()}/{random.getrandbits(32)}",
    )
    if getattr(args, "mix", None):
        return _sign_mix(args, spec, keys, plan, consensus)
    total = READY_TXS + sum(plan.counts)
    log.info("signing %d txs with %d agencies", total, len(keys))
    signed = txgen.sign_all(spec, keys, total, workers=args.sign_workers)
    txs = signed.txs
    per_run, position = [], READY_TXS
    for count in plan.counts:
        per_run.append(txs[position : position + count])
        position += count
    section = _signing_section(args, spec, txs, signed.sign_seconds, signed.workers, consensus)
    section["txs"] = total
    section["agencies"] = len(keys)
    return Signed(per_run, txs[:READY_TXS], section, None)


def _sign_mix(
    args: argparse.Namespace,
    spec: txgen.LoadSpec,
    keys: list[Any],
    plan: Plan,
    consensus: str | None,
) -> Signed:
    """The ready probe stays a few notary anchors; setup and runs come from bench/mix.py."""
    ready = txgen.sign_all(spec, keys, READY_TXS, workers=0).txs
    log.info("signing a %s mix: %d run txs and their setup", args.mix, sum(plan.counts))
    load = mixload.prepare(spec, keys, args.mix, plan.counts, workers=args.sign_workers)
    everything = [tx for stage in load.setup for tx in stage] + [
        tx for txs in load.per_run for tx in txs
    ]
    section = _signing_section(args, spec, everything, load.sign_seconds, load.workers, consensus)
    section["txs"] = len(everything)
    section["agencies"] = len(keys)
    section["kind"] = "mix"
    section["mix"] = {"weights": dict(args.mix), **load.section()}
    return Signed(load.per_run, ready, section, load)


def _signing_section(
    args: argparse.Namespace,
    spec: txgen.LoadSpec,
    txs: list[txgen.SignedTx],
    seconds: float,
    workers: int,
    consensus: str | None,
) -> dict[str, Any]:
    sizes = [tx.size for tx in txs] or [0]
    return {
        "seconds": seconds,
        "txs_per_s": len(txs) / seconds if seconds else None,
        "workers": workers,
        "tx_bytes_target": args.tx_bytes,
        "tx_bytes_mean": sum(sizes) / len(sizes),
        "kind": txgen.ANCHOR_KIND,
        "chain_id": spec.chain_id,
        "consensus": consensus,
    }


async def run_plan(
    cluster: Cluster,
    plan: Plan,
    signed: Signed,
    server: prom.PrometheusServer | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ready_s = await wait_ready(cluster, signed.ready_txs)
    log.info("cluster ready in %.1f s", ready_s)
    setup_section = None
    if signed.mix is not None:
        await wait_quiet(cluster)
        setup_section = await setup.run_setup(cluster, signed.mix)
        log.info("mix setup committed: %s", setup_section)
    summaries: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for spec, txs in zip(plan.specs, signed.per_run, strict=True):
        await wait_quiet(cluster)
        log.info("run %s: %d txs for %g s", spec.label, len(txs), spec.duration_s)
        summary = await runner.measure(cluster, txs, spec)
        summaries.append(summary)
        if server is not None:
            window = summary["drain_end_s"]
            figures[spec.label] = await asyncio.to_thread(server.report_figures, window)
    extra = {"ready_s": ready_s, "prometheus_figures": figures, "setup": setup_section}
    return summaries, extra


def run_bench(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "schema": results.SCHEMA_NAME,
        "version": results.SCHEMA_VERSION,
        "minor_version": results.SCHEMA_MINOR_VERSION,
        "started_at": results.utc_now(),
        "command": ["seoulchain", "bench", *args.argv],
        "config": config_section(args),
        "environment": results.environment(),
        "sweep": None,
        "prometheus": None,
        "setup": None,
    }
    plan = plan_runs(args)
    cluster = obtain_cluster(args, out)
    server: prom.PrometheusServer | None = None
    try:
        document["cluster"] = cluster_section(args, cluster)
        if args.prometheus:
            server = start_prometheus(out, cluster)
        signed = sign(args, cluster, plan)
        document["signing"] = signed.section
        document["cluster"]["consensus"] = document["signing"]["consensus"]
        # uvloop, the loop the nodes run on; the load generator's CPU and the measured
        # latencies were the same as on asyncio's loop within the noise (BENCHMARKS.md)
        runs, extra = uvloop.run(run_plan(cluster, plan, signed, server))
        document["runs"] = runs
        document["setup"] = extra["setup"]
        document["cluster"]["ready_s"] = extra["ready_s"]
        if server is not None:
            document["prometheus"] = {
                "url": server.url,
                "kept": args.keep_prometheus,
                "directory": str(server.directory),
                "figures": extra["prometheus_figures"],
            }
    finally:
        if server is not None and not args.keep_prometheus:
            server.stop()
        document["teardown"] = (
            "cluster kept running (--keep-cluster)"
            if args.keep_cluster
            else cluster_module.teardown(cluster)
        )
    return finish(document, out, plan, draw=not args.no_plots)


def finish(document: dict[str, Any], out: Path, plan: Plan, *, draw: bool) -> int:
    if plan.sweep:
        document["sweep"] = results.sweep_section(document["runs"])
    document["finished_at"] = results.utc_now()
    results.write(out / "results.json", document)
    names = plots.draw_all(document, out) if draw else []
    text = report.render(document, plots=names)
    (out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"results: {out / 'results.json'}  report: {out / 'report.md'}", file=sys.stderr)
    healthy = all(
        run["committed"] > 0
        and run["consistency"].get("same_app_hash")
        and run["consistency"].get("same_block_hash")
        for run in document["runs"]
    )
    return 0 if healthy else 1


def start_prometheus(out: Path, cluster: Cluster) -> prom.PrometheusServer:
    targets = [
        node.metrics_url.removeprefix("http://").removesuffix("/metrics")
        for node in cluster.nodes
        if node.metrics_url
    ]
    if not targets:
        raise BenchError("--prometheus: no node exposes a metrics address")
    try:
        server = prom.start(out / "prometheus", targets)
    except prom.PrometheusError as error:
        raise BenchError(f"--prometheus: {error}") from None
    try:
        server.wait_for_target_up()
    except prom.PrometheusError as error:
        server.stop()
        raise BenchError(f"--prometheus: {error}") from None
    return server


def config_section(args: argparse.Namespace) -> dict[str, Any]:
    keys = [
        "nodes",
        "consensus",
        "rate",
        "concurrency",
        "sweep",
        "duration",
        "warmup",
        "drain",
        "txs_max",
        "tx_bytes",
        "batch_ms",
        "fault",
        "subscribe",
        "agencies",
        "sign_workers",
        "prometheus",
        "keep_prometheus",
        "seed",
        "mix",
    ]
    section = {key: getattr(args, key, None) for key in keys}
    section["warmup_s"] = plan_runs(args).specs[0].warmup_s
    section["drain_s"] = float(args.drain)
    section["attach"] = str(args.attach) if args.attach else None
    section["rpc"] = args.rpc
    return section


def cluster_section(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    return {
        "launched": cluster.owned,
        "directory": str(cluster.directory) if cluster.directory else None,
        "consensus": args.consensus if cluster.owned else None,
        "nodes_count": len(cluster.nodes),
        "nodes": [
            {"name": node.name, "rpc": node.rpc_url, "metrics": node.metrics_url}
            for node in cluster.nodes
        ],
    }


USER_ERRORS = (
    BenchError,
    ClusterError,
    faults.FaultError,
    txgen.TxGenError,
    runner.RunError,
    setup.SetupError,
)
