"""Four PBFT validators in one process over real encrypted TCP on 127.0.0.1.

Pins the wiring of engine, driver, p2p, gossip and execution: txs submitted to different
nodes all commit, and every node holds the same block hashes and app hashes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import Histogram

from protocol.tx import sign_tx
from services.notary import encode_anchor
from tests.node.cluster_helpers import CHAIN, local_net

pytestmark = pytest.mark.slow


async def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _observations(histogram: Histogram) -> int:
    (count,) = [
        sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    ]
    return int(count)


async def test_four_validators_commit_the_same_chain(tmp_path: Path) -> None:
    net = local_net(tmp_path, validators=4)
    nodes = [await net.start_node(i) for i in range(4)]
    try:
        txs = [
            sign_tx(
                net.agency,
                chain_id=CHAIN,
                nonce=n,
                expiry_height=10_000,
                kind="notary.anchor",
                body=encode_anchor(n.to_bytes(32, "big"), "certificate"),
            )
            for n in range(40)
        ]
        for n, tx in enumerate(txs):
            result = await nodes[n % 4].submit_tx(tx.encode())
            assert result.code == 0, result
        committed = await asyncio.gather(
            *(nodes[0].wait_for_commit(tx.hash(), timeout_s=30) for tx in txs)
        )
        assert all(c is not None and c.result.code == 0 for c in committed)
        top = max(c.height for c in committed if c is not None)
        assert await _wait(lambda: all(n.latest_height() >= top for n in nodes), 20)
        for height in range(1, top + 1):
            hashes = {n.store.block_hash(height) for n in nodes}
            apps = {n.store.app_hash(height) for n in nodes}
            assert len(hashes) == 1, f"fork at height {height}"
            assert len(apps) == 1, f"app hash diverged at height {height}"

        # Proposal-to-commit time counts the blocks a node proposed and that committed:
        # the primary's. A backup's empty "txs wait here" proposals never commit.
        def proposed_and_observed() -> list[tuple[int, int]]:
            counts = []
            for node, key in zip(nodes, net.keys, strict=True):
                sealed = [node.sealed_block(h) for h in range(1, node.latest_height() + 1)]
                own = sum(1 for b in sealed if b and b.block.header.proposer == key.public_key)
                counts.append((own, _observations(node.metrics.consensus_commit_seconds)))
            return counts

        assert await _wait(lambda: all(p == o for p, o in proposed_and_observed()), 10), (
            proposed_and_observed()
        )
        assert proposed_and_observed()[0][0] >= 1, "the primary's blocks are counted"
        # Every synced consensus write is observed once, with the outputs it covered.
        for node in nodes:
            writes = node.driver.persists_total
            assert writes > 0
            assert _observations(node.metrics.consensus_persist_seconds) == writes
            assert _observations(node.metrics.consensus_persist_outputs) == writes
    finally:
        for node in nodes:
            await node.stop()
