"""The load generator: open loop at a target rate, or closed loop at a set concurrency,
spread round-robin over the live nodes, plus the WebSocket followers that see commits.

Open loop: batches leave on the schedule of schedule.py whether or not earlier batches
were answered; each batch is one `broadcast_txs` call, run as its own task, with at most
`inflight_max` calls outstanding (past that the sender waits, which shows as latency, since
latency counts from the ideal send time). Closed loop: `concurrency` workers each send one
tx (`broadcast_tx_sync`) and wait for its commit event before sending the next.

Cost matters: the generator shares the machine's cores with the nodes. Txs are signed and
base64-encoded before the run; the hot path builds one JSON body per batch and never
touches a tx's bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import NodeHandle
from bench.ledger import Ledger
from bench.schedule import Batch, open_loop_batches
from bench.txgen import SignedTx
from node.client import RpcClient, RpcError, RpcTransportError, SubscriptionDropped

log = logging.getLogger(__name__)

BROADCAST_TXS_MAX = 1_000  # node/rpc/config.py broadcast_txs_max
BATCH_BODY_BYTES_MAX = 700_000  # below the RPC's 1,000,000-byte body cap, with headroom
INFLIGHT_CALLS_MAX = 64
COMMIT_WAIT_S = 30.0  # closed loop: give up on one tx's commit after this long
NEW_BLOCK_QUERY = "tm.event='NewBlock'"


@dataclass(slots=True)
class SenderStats:
    calls: int = 0
    call_errors: int = 0
    stalls: int = 0  # times the open-loop sender waited for an outstanding call
    behind_s_max: float = 0.0  # worst lateness of a batch against its due time
    commit_timeouts: int = 0  # closed loop
    timed_out: bool = False  # the sender overran the run's time bound and was stopped
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class RunClock:
    """Seconds since the run's start; one perf_counter base for sends and commits."""

    def __init__(self) -> None:
        self.zero = time.perf_counter()

    def start(self) -> None:
        """Time zero is now (called once the event streams are open)."""
        self.zero = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.zero


class Targets:
    """Round-robin over the nodes that are still alive (a --fault removes one)."""

    def __init__(self, nodes: Sequence[NodeHandle], clients: dict[str, RpcClient]) -> None:
        self._nodes = list(nodes)
        self._clients = clients
        self._turn = itertools.count()

    def next(self) -> RpcClient | None:
        alive = [node for node in self._nodes if not node.killed]
        if not alive:
            return None
        return self._clients[alive[next(self._turn) % len(alive)].name]


class CommitWaiters:
    """Closed loop: a future per tx index, resolved when its commit is seen."""

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[None]] = {}

    def expect(self, index: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures[index] = future
        return future

    def resolve(self, indexes: Sequence[int]) -> None:
        for index in indexes:
            future = self._futures.pop(index, None)
            if future is not None and not future.done():
                future.set_result(None)

    def forget(self, index: int) -> None:
        self._futures.pop(index, None)


# --- commit followers ---------------------------------------------------------------------


async def follow_blocks(
    node: NodeHandle,
    client: RpcClient,
    ledger: Ledger,
    clock: RunClock,
    waiters: CommitWaiters,
    ready: asyncio.Event,
) -> None:
    """Record every NewBlock event from `node` until cancelled or the node goes away."""
    try:
        async with client.subscribe(NEW_BLOCK_QUERY) as events:
            ready.set()
            async for event in events:
                at_s = clock.now()
                data = event.get("data") if isinstance(event, dict) else None
                value = data.get("value", data) if isinstance(data, dict) else None
                if isinstance(value, dict):
                    waiters.resolve(ledger.block_seen(at_s, value, node=node.name))
    except (SubscriptionDropped, RpcTransportError, RpcError, OSError) as error:
        level = logging.INFO if node.killed else logging.WARNING
        log.log(level, "%s: event stream ended: %s", node.name, error)
        reason = str(error)[:200]
        ledger.streams_ended[node.name] = (
            f"node killed by the fault: {reason}" if node.killed else reason
        )
    finally:
        ready.set()  # never leave the runner waiting on a stream that failed to open


# --- open loop ----------------------------------------------------------------------------


def _chunks(batch: Batch, txs: Sequence[SignedTx]) -> list[range]:
    """Split a batch so each call stays under the RPC's item and body caps."""
    ranges: list[range] = []
    start = batch.first
    body = 0
    for index in range(batch.first, batch.first + batch.count):
        size = len(txs[index].text) + 3
        if index > start and (
            index - start >= BROADCAST_TXS_MAX or body + size > BATCH_BODY_BYTES_MAX
        ):
            ranges.append(range(start, index))
            start, body = index, 0
        body += size
    ranges.append(range(start, batch.first + batch.count))
    return ranges


async def _send_many(
    client: RpcClient, txs: Sequence[SignedTx], indexes: range, ledger: Ledger, stats: SenderStats
) -> None:
    stats.calls += 1
    try:
        answer = await client.call("broadcast_txs", {"txs": [txs[i].text for i in indexes]})
        results = answer["results"] if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(indexes):
            raise RpcTransportError("broadcast_txs: answer does not match the batch")
    except (RpcError, RpcTransportError) as error:
        _call_failed(error, indexes, ledger, stats)
        return
    for index, result in zip(indexes, results, strict=True):
        if isinstance(result, dict) and result.get("code") == 0:
            continue
        _refused(index, result, ledger)


def _refused(index: int, result: Any, ledger: Ledger) -> None:
    if not isinstance(result, dict):
        ledger.refused(index, "malformed-answer", str(result)[:200])
        return
    codespace = str(result.get("codespace") or "app")
    ledger.refused(index, f"{codespace}:{result.get('code')}", str(result.get("log", "")))


def _call_failed(error: Exception, indexes: range, ledger: Ledger, stats: SenderStats) -> None:
    stats.call_errors += 1
    if isinstance(error, RpcError):
        kind = f"rpc:{error.code}"
    else:
        status = getattr(error, "status", None)
        kind = f"transport:{status}" if status else "transport"
    stats.errors_by_kind[kind] = stats.errors_by_kind.get(kind, 0) + 1
    for index in indexes:
        ledger.refused(index, kind, str(error))


async def open_loop(
    targets: Targets,
    txs: Sequence[SignedTx],
    ledger: Ledger,
    clock: RunClock,
    stats: SenderStats,
    *,
    rate_tps: float,
    duration_s: float,
    interval_s: float,
) -> None:
    """Send `txs` on the open-loop schedule; returns when the last batch is answered (each
    call has the client's timeout, so this is bounded)."""
    inflight: set[asyncio.Task[None]] = set()
    schedule = open_loop_batches(
        rate_tps=rate_tps, duration_s=duration_s, interval_s=interval_s, txs_max=len(txs)
    )
    for batch in schedule:
        delay = batch.due_s - clock.now()
        if delay > 0:
            await asyncio.sleep(delay)
        stats.behind_s_max = max(stats.behind_s_max, -delay)
        for indexes in _chunks(batch, txs):
            client = targets.next()
            if client is None:
                return  # every node is gone
            while len(inflight) >= INFLIGHT_CALLS_MAX:
                stats.stalls += 1
                done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                inflight.difference_update(done)
            now_s = clock.now()
            for index in indexes:
                ledger.sent_at(index, index / rate_tps, now_s)
            task = asyncio.create_task(_send_many(client, txs, indexes, ledger, stats))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
    try:
        if inflight:
            await asyncio.wait(inflight)
    finally:
        pending = [task for task in inflight if not task.done()]
        for task in pending:
            task.cancel()  # only when the caller's time bound cancelled us
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


# --- closed loop --------------------------------------------------------------------------


async def closed_loop(
    targets: Targets,
    txs: Sequence[SignedTx],
    ledger: Ledger,
    clock: RunClock,
    waiters: CommitWaiters,
    stats: SenderStats,
    *,
    concurrency: int,
    duration_s: float,
) -> None:
    indexes = iter(range(len(txs)))

    async def worker() -> None:
        while clock.now() < duration_s:
            index = next(indexes, None)
            client = targets.next()
            if index is None or client is None:
                return
            ledger.sent_at(index, clock.now())
            committed = waiters.expect(index)
            stats.calls += 1
            try:
                result = await client.call("broadcast_tx_sync", {"tx": txs[index].text})
            except (RpcError, RpcTransportError) as error:
                waiters.forget(index)
                _call_failed(error, range(index, index + 1), ledger, stats)
                continue
            if not (isinstance(result, dict) and result.get("code") == 0):
                waiters.forget(index)
                _refused(index, result, ledger)
                continue
            try:
                await asyncio.wait_for(committed, COMMIT_WAIT_S)
            except TimeoutError:
                stats.commit_timeouts += 1
                waiters.forget(index)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*workers, return_exceptions=True)
