"""The open-loop schedule (bench/schedule.py) and the open-loop sender (bench/loadgen.py):
batches leave on schedule whatever the answers, and never before a tx's ideal time."""

from __future__ import annotations

import asyncio
import math

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bench.cluster import NodeHandle
from bench.ledger import Ledger
from bench.loadgen import RunClock, SenderStats, Targets, open_loop
from bench.schedule import open_loop_batches
from bench.txgen import SignedTx
from node.client import RpcClient


@given(
    rate=st.floats(min_value=1.0, max_value=20_000.0),
    duration=st.floats(min_value=0.05, max_value=3.0),
    interval=st.sampled_from([0.001, 0.005, 0.01, 0.05]),
)
def test_every_tx_is_sent_once_never_early_and_at_most_one_interval_late(
    rate: float, duration: float, interval: float
) -> None:
    batches = list(
        open_loop_batches(rate_tps=rate, duration_s=duration, interval_s=interval, txs_max=10**6)
    )
    expected = math.floor(rate * duration)
    assert sum(b.count for b in batches) == expected
    next_index = 0
    for batch in batches:
        assert batch.first == next_index, "batches cover the txs in order, without gaps"
        assert batch.count >= 1
        for index in range(batch.first, batch.first + batch.count):
            ideal = batch.ideal_send_s(index, rate)
            assert ideal <= batch.due_s + 1e-9, "a tx never leaves before its ideal time"
            assert batch.due_s - ideal < interval + 1e-9, "nor more than an interval late"
        next_index += batch.count
    dues = [b.due_s for b in batches]
    assert dues == sorted(dues)


def test_txs_max_caps_the_schedule() -> None:
    batches = list(open_loop_batches(rate_tps=1000, duration_s=10, interval_s=0.01, txs_max=25))
    assert sum(b.count for b in batches) == 25


def test_constant_rate_gives_even_batches() -> None:
    batches = list(open_loop_batches(rate_tps=1000, duration_s=1, interval_s=0.01, txs_max=10**6))
    assert batches[0].count == 1  # tx 0 is due at t = 0
    assert {b.count for b in batches[1:-1]} == {10}
    assert batches[-1].count == 9  # the remainder of the 1,000, due at t = 1.0
    assert sum(b.count for b in batches) == 1000


class SlowNode:
    """An RPC endpoint that records when each broadcast_txs call arrives and answers only
    once released. It stands in for a node too slow to answer, which a real node cannot
    be made to be on demand; the test is about the sender, not the node."""

    def __init__(self) -> None:
        self.arrivals: list[int] = []  # sizes of batches received, in arrival order
        self.release = asyncio.Event()
        self.all_arrived = asyncio.Event()
        self.expected_txs = 40
        self.answered_before_last_arrival = False
        self.answered = 0

    async def handle(self, request: web.Request) -> web.Response:
        document = await request.json()
        txs = document["params"]["txs"]
        self.arrivals.append(len(txs))
        if sum(self.arrivals) >= self.expected_txs:
            self.all_arrived.set()
        await self.release.wait()
        self.answered += 1
        results = [{"code": 0, "hash": "", "log": "", "codespace": ""} for _ in txs]
        return web.json_response(
            {"jsonrpc": "2.0", "id": document["id"], "result": {"results": results}}
        )


def fake_txs(count: int) -> list[SignedTx]:
    return [SignedTx(text="AA==", size=1, hash_hex=f"{i:064x}") for i in range(count)]


async def test_open_loop_keeps_sending_while_no_call_has_been_answered() -> None:
    node = SlowNode()
    app = web.Application()
    app.router.add_post("/", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = RpcClient(f"http://127.0.0.1:{port}", timeout_s=30.0, connections_max=64)
    handle = NodeHandle(name="node0", rpc_url=client.url, metrics_url=None)
    txs = fake_txs(40)
    ledger = Ledger([tx.hash_hex for tx in txs])
    clock = RunClock()
    stats = SenderStats()
    try:
        sender = asyncio.create_task(
            open_loop(
                Targets([handle], {"node0": client}),
                txs,
                ledger,
                clock,
                stats,
                rate_tps=200.0,
                duration_s=0.2,
                interval_s=0.005,
            )
        )
        # Every batch must reach the node although none has been answered yet.
        await asyncio.wait_for(node.all_arrived.wait(), 20)
        assert node.answered == 0
        assert len(node.arrivals) >= 20  # one call per batch, not one call for everything
        assert ledger.sent == 40
        node.release.set()
        await asyncio.wait_for(sender, 20)
        assert stats.calls == len(node.arrivals)
        assert stats.call_errors == 0
        assert ledger.pending == 40  # admitted, not committed: nothing was refused
        assert [ledger.ideal_s[i] for i in (0, 1, 39)] == pytest.approx([0.0, 0.005, 0.195])
    finally:
        node.release.set()
        await client.close()
        await runner.cleanup()
