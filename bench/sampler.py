"""Once a second during a run: every node's /metrics and /proc figures, as time series.

Also the full scrapes before and after the run, from which promtext.run_figures derives
counters' growth (messages and bytes per block, view changes, rejections). A node that
does not answer (killed by a --fault, or overloaded) gives a gap in its series and a
counted error, never a failed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import procstat, promtext
from bench.cluster import NodeHandle

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
SAMPLE_INTERVAL_S = 1.0
SERIES_POINTS_MAX = 36_000  # ten hours at 1/s per node; a run is bounded far below that

P = promtext.PREFIX
SERIES_METRICS = {
    "height": P + "consensus_height",
    "view": P + "consensus_view",
    "view_changes": P + "consensus_view_changes_total",
    "mempool_size": P + "mempool_size",
    "block_txs_count": P + "consensus_block_txs_count",
    "block_txs_sum": P + "consensus_block_txs_sum",
    "p2p_bytes_sent": P + "p2p_bytes_sent_total",
    "consensus_messages": P + "consensus_messages_total",
    "rpc_requests": P + "rpc_requests_total",
    "mempool_rejected": P + "mempool_rejected_total",
}


@dataclass(slots=True)
class NodeSeries:
    points: list[dict[str, float]] = field(default_factory=list)
    scrape_errors: int = 0
    malformed_lines: int = 0


class Sampler:
    def __init__(self, nodes: list[NodeHandle], *, clock_zero: float) -> None:
        self._nodes = nodes
        self._zero = clock_zero
        self.series: dict[str, NodeSeries] = {node.name: NodeSeries() for node in nodes}
        self.before: dict[str, promtext.Scrape] = {}
        self.after: dict[str, promtext.Scrape] = {}
        self.proc_before: dict[str, procstat.ProcSample] = {}
        self.proc_after: dict[str, procstat.ProcSample] = {}
        self.pids: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    def reset_zero(self, clock_zero: float) -> None:
        """Series times count from the run's start (set once the event streams are open)."""
        self._zero = clock_zero

    async def __aenter__(self) -> Sampler:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def scrape(self, node: NodeHandle) -> promtext.Scrape | None:
        if node.metrics_url is None or node.killed:
            return None
        assert self._session is not None, "use Sampler as an async context manager"
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
        try:
            async with self._session.get(node.metrics_url, timeout=timeout) as response:
                body = await response.content.read(promtext.SCRAPE_BYTES_MAX)
                if response.status != 200:
                    raise aiohttp.ClientError(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            self.series[node.name].scrape_errors += 1
            log.debug("%s: scrape failed: %s", node.name, error)
            return None
        scrape = promtext.parse(body.decode("utf-8", "replace"))
        self.series[node.name].malformed_lines += scrape.malformed_lines
        return scrape

    async def snapshot(self, into: dict[str, promtext.Scrape]) -> None:
        scrapes = await asyncio.gather(*(self.scrape(node) for node in self._nodes))
        for node, scrape in zip(self._nodes, scrapes, strict=True):
            if scrape is not None:
                into[node.name] = scrape

    def proc_snapshot(self, into: dict[str, procstat.ProcSample]) -> None:
        for node in self._nodes:
            pid = self.pids.get(node.name) or node.pid()
            if pid is None:
                continue
            self.pids[node.name] = pid
            found = procstat.sample(pid)
            if found is not None:
                into[node.name] = found

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every SAMPLE_INTERVAL_S until `stop` is set."""
        while not stop.is_set():
            await self.sample_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL_S)

    async def sample_once(self) -> None:
        at_s = round(time.perf_counter() - self._zero, 3)
        scrapes = await asyncio.gather(*(self.scrape(node) for node in self._nodes))
        for node, scrape in zip(self._nodes, scrapes, strict=True):
            point: dict[str, float] = {"t_s": at_s}
            if scrape is not None:
                for key, name in SERIES_METRICS.items():
                    point[key] = scrape.total(name)
            pid = self.pids.get(node.name)
            proc = procstat.sample(pid) if pid is not None and not node.killed else None
            if proc is not None:
                point["cpu_s"] = proc.cpu_s
                point["rss_bytes"] = float(proc.rss_bytes)
            series = self.series[node.name]
            if len(point) > 1 and len(series.points) < SERIES_POINTS_MAX:
                series.points.append(point)

    def node_figures(self, committed: int) -> dict[str, dict[str, Any]]:
        """Per node: counters' growth from the scrapes, CPU per committed tx, RSS."""
        figures: dict[str, dict[str, Any]] = {}
        for node in self._nodes:
            entry: dict[str, Any] = {"killed": node.killed, "pid": self.pids.get(node.name)}
            before, after = self.before.get(node.name), self.after.get(node.name)
            if before is not None and after is not None:
                entry["metrics"] = promtext.run_figures(before, after)
            start, end = self.proc_before.get(node.name), self.proc_after.get(node.name)
            if start is not None and end is not None:
                cpu_s = end.cpu_s - start.cpu_s
                entry["cpu_s"] = cpu_s
                entry["cpu_s_per_committed_tx"] = cpu_s / committed if committed else None
                entry["rss_bytes_end"] = end.rss_bytes
            series = self.series[node.name]
            entry["rss_bytes_max"] = max(
                (int(p["rss_bytes"]) for p in series.points if "rss_bytes" in p), default=None
            )
            entry["scrape_errors"] = series.scrape_errors
            views = [p["view"] for p in series.points if "view" in p]
            entry["view_start"] = views[0] if views else None
            entry["view_end"] = views[-1] if views else None
            figures[node.name] = entry
        return figures
