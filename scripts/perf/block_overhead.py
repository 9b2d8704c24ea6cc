"""Micro-benchmark: CPU per committed block that is not per tx (consensus messages, p2p,
engine steps, the commit path), for four PBFT validators.

Four real `Node`s in this one process (one uvloop event loop, as `seoulchain start`
runs; real LevelDB stores, real encrypted TCP on 127.0.0.1, default consensus config:
20 ms ticks and block interval) take one notary anchor every `--gap-ms` (default 60 ms,
longer than a block's round trip, so nearly every block carries one tx; the proof blocks
that follow a tx are counted too), sent round-robin to the four. Reports the process CPU
(`time.process_time`, every thread of all four nodes) per committed block, divided by four
for a per-node figure, median of `--reps` runs on fresh nodes. With 4 nodes sharing one
interpreter the absolute figure is lower than in a cluster of processes (no per-process
cache thrash), but it moves with the per-block work the code does, which is its purpose.

Run: .venv/bin/python scripts/perf/block_overhead.py [--blocks 200] [--gap-ms 60] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node.node import Node
from protocol.tx import sign_tx
from services.notary import encode_anchor
from tests.node.cluster_helpers import CHAIN, LocalNet, local_net

VALIDATORS = 4


def _defaults(net: LocalNet) -> None:
    """The node's production consensus timing, not the tests' faster one."""
    for config in net.configs:
        config.consensus.tick_ms = 20
        config.consensus.block_interval_ms = 20
        config.consensus.view_change_timeout_ticks = 100


async def _wait(nodes: list[Node], height: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while min(node.latest_height() for node in nodes) < height:
        if time.monotonic() > deadline:
            raise SystemExit(f"nodes did not reach height {height} in {timeout_s:g} s")
        await asyncio.sleep(0.02)


async def _one_run(root: Path, *, txs: int, gap_s: float) -> tuple[float, int]:
    net = local_net(root, validators=VALIDATORS)
    _defaults(net)
    nodes = [await net.start_node(index) for index in range(VALIDATORS)]
    try:
        await asyncio.sleep(1.0)  # connect
        signed = [
            sign_tx(
                net.agency,
                chain_id=CHAIN,
                nonce=nonce,
                expiry_height=1_000_000,
                kind="notary.anchor",
                body=encode_anchor(nonce.to_bytes(32, "big"), "certificate"),
            )
            for nonce in range(txs)
        ]
        start_height = max(node.latest_height() for node in nodes)
        await _wait(nodes, start_height, 10)
        cpu_started = time.process_time()
        for index, tx in enumerate(signed):
            result = await nodes[index % VALIDATORS].submit_tx(tx.encode())
            assert result.code == 0, result
            await asyncio.sleep(gap_s)
        last = await nodes[0].wait_for_commit(signed[-1].hash(), timeout_s=30)
        assert last is not None, "the last tx did not commit"
        await _wait(nodes, last.height, 30)
        cpu = time.process_time() - cpu_started
        return cpu, last.height - start_height
    finally:
        for node in nodes:
            await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=200, help="txs sent, about one per block")
    parser.add_argument("--gap-ms", type=float, default=60.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    per_block_ms: list[float] = []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as directory:
            cpu, blocks = uvloop.run(
                _one_run(Path(directory), txs=args.blocks, gap_s=args.gap_ms / 1000)
            )
        per_block_ms.append(cpu / blocks * 1000 / VALIDATORS)
        print(f"  run: {blocks} blocks, {cpu:.2f} s CPU, {per_block_ms[-1]:.2f} ms/block/node")
    runs = ", ".join(f"{value:.2f}" for value in per_block_ms)
    print(f"CPU per block per node: {statistics.median(per_block_ms):.2f} ms (runs: {runs})")


if __name__ == "__main__":
    main()
