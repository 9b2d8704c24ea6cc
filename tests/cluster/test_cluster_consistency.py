"""Issue 4, scenario 1: four validators over TCP commit 1,000 txs sent round-robin to all of
them, and every node holds the same chain (block hash and app hash at every height)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from node.cluster import cluster_status, status_line
from tests.cluster.cluster_harness import (
    LocalCluster,
    all_committed,
    assert_same_chain,
    assert_txs_found,
    send_round_robin,
    wait_until,
)

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TXS = 1_000
BATCH_TXS = 50


async def test_thousand_txs_round_robin_commit_identically(cluster4: LocalCluster) -> None:
    nodes = list(range(4))
    factories = [cluster4.tx_factory("rr-a", 0), cluster4.tx_factory("rr-b", 1)]
    txs = [factories[i % 2].make() for i in range(TXS)]
    started = time.monotonic()
    hashes = await send_round_robin(cluster4, nodes, txs, batch_txs=BATCH_TXS)
    assert len(set(hashes)) == TXS

    for index in nodes:

        async def done(index: int = index) -> bool:
            return await all_committed(cluster4, index, hashes)

        await wait_until(done, timeout_s=60, interval_s=0.5, what=f"node{index} commits all")
    elapsed = time.monotonic() - started
    log.info("scenario 1: %d txs committed on all 4 nodes in %.2f s", TXS, elapsed)

    heights = await cluster4.heights(nodes)
    top = min(heights)
    await assert_txs_found(cluster4, nodes, hashes)
    await assert_same_chain(cluster4, nodes, top)
    committed = 0
    for height in range(1, top + 1):
        block = await cluster4.client(0).block(height)
        committed += len(block["block"]["data"]["txs"])
    assert committed == TXS, f"{committed} txs in blocks 1..{top}, sent {TXS}"

    # `seoulchain cluster status` sees the harness's processes (same pid and log files).
    states = await asyncio.to_thread(cluster_status, cluster4.directory)
    lines = [status_line(state) for state in states]
    assert len(lines) == 4
    assert all(" up " in line and "peers=3" in line for line in lines), lines
    assert sum("role=primary" in line for line in lines) == 1, lines
    print(f"\nscenario 1: {TXS} txs, {top} blocks, {elapsed:.2f} s, {TXS / elapsed:.0f} tx/s")
