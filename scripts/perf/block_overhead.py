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

`--engine-only` times the four PBFT engines alone instead: the production PBFT config,
every message through the real codec (encode, decode, `invalid`) in FIFO order, blocks
committed and "executed" at once (tests/consensus/pbft/pbft_harness.py's router), one
tick per block and a proposal from every node offering a slot (backups offer one too). It
reports the CPU of `engine.step` plus the status the driver reads after each step, per
block per node: the engine's share of the figure above, without network or store. The run
is deterministic: with `CALLGRIND=/path/libcg.so` (a helper exporting `cg_start` /
`cg_stop`, docs/BENCHMARKS-HOWTO.md) under `valgrind --tool=callgrind --instr-atstart=no`
the whole loop is counted, with the codec's signature checks (`invalid`) skipped so that
the count is the engines' and the codec's work (use `--blocks 100`: about a minute).

`--p2p-frames N` times the p2p layer alone: two real P2PNodes on 127.0.0.1 play ping-pong
with 160-byte messages on one channel (each message answered from the receive callback, so
every frame is sealed, written, read, opened and dispatched alone, as consensus votes are),
and it reports the process CPU per frame (one send plus one receive).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consensus.types import Event, Output
from node.driver import after_step_status
from node.node import Node
from p2p.manager import P2PNode
from protocol.tx import sign_tx
from services.notary import encode_anchor
from tests.consensus.pbft.pbft_harness import Router
from tests.node.cluster_helpers import CHAIN, LocalNet, local_net
from tests.p2p.p2p_helpers import address_of, make_config, public_key, wait_until

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


class _TimedRouter(Router):
    """The test router with the production PBFT config, timing each engine step and the
    status the driver reads after it (CPU of this thread only)."""

    def __init__(self) -> None:
        super().__init__(
            VALIDATORS,
            checkpoint_interval=16,
            window=64,
            timeout_ticks=100,
            backups_offer_slots=True,
        )
        self.engine_s = 0.0

    def step(self, index: int, event: Event) -> Output:
        engine = self.engine(index)
        status = after_step_status(engine)
        started = time.thread_time()
        output = engine.step(event)
        status()
        self.engine_s += time.thread_time() - started
        self.honour(index, output)
        return output


def _engine_run(blocks: int) -> tuple[float, int]:
    router = _TimedRouter()
    library = os.environ.get("CALLGRIND")
    callgrind = ctypes.CDLL(library) if library else None
    if callgrind is not None:
        router.codec.invalid = lambda _message, _sender: None  # type: ignore[method-assign,assignment]
        callgrind.cg_start()
    while min(state.height for state in router.states) < blocks:
        for index in range(VALIDATORS):
            slot = router.engine(index).status().proposal_slot
            if slot is not None and slot.height > router.states[index].height:
                router.propose(index)
        router.deliver_all()
        router.tick()
    if callgrind is not None:
        callgrind.cg_stop()
    router.assert_agreement()
    return router.engine_s, min(state.height for state in router.states)


async def _p2p_run(frames: int) -> float:
    """CPU seconds per frame of a ping-pong between two nodes (see the docstring)."""
    done = asyncio.get_running_loop().create_future()
    rounds = [0]
    nodes: list[P2PNode] = []
    payload = bytes(160)

    def answer(index: int) -> Callable[[bytes, bytes], None]:
        def on_message(peer: bytes, _payload: bytes) -> None:
            rounds[0] += 1
            if rounds[0] >= frames:
                if not done.done():
                    done.set_result(None)
                return
            nodes[index].send(peer, 1, payload)

        return on_message

    nodes.append(P2PNode(make_config(0, allowed=range(2))))
    await nodes[0].start()
    nodes.append(P2PNode(make_config(1, allowed=range(2), peers=[address_of(nodes[0], 0)])))
    for index, node in enumerate(nodes):
        node.register_channel(1, answer(index), send_queue_max=16, message_bytes_max=1024)
    await nodes[1].start()
    try:
        await wait_until(lambda: nodes[1].connected_keys() == [public_key(0)])
        started = time.process_time()
        nodes[1].send(public_key(0), 1, payload)
        await asyncio.wait_for(done, timeout=60)
        return (time.process_time() - started) / frames
    finally:
        for node in nodes:
            await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=200, help="txs sent, about one per block")
    parser.add_argument("--gap-ms", type=float, default=60.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--engine-only", action="store_true", help="the engines alone (above)")
    parser.add_argument("--p2p-frames", type=int, default=0, help="the p2p layer alone (above)")
    args = parser.parse_args()
    if args.p2p_frames:
        per_frame_us = []
        for _ in range(args.reps):
            per_frame_us.append(uvloop.run(_p2p_run(args.p2p_frames)) * 1e6)
            print(f"  run: {per_frame_us[-1]:.1f} us/frame")
        print(f"p2p CPU per frame (send + receive): {statistics.median(per_frame_us):.1f} us")
        return
    if args.engine_only:
        per_block_us = []
        for _ in range(args.reps):
            seconds, blocks = _engine_run(args.blocks)
            per_block_us.append(seconds / blocks * 1e6 / VALIDATORS)
            print(f"  run: {blocks} blocks, {per_block_us[-1]:.1f} us/block/node")
        print(f"engine CPU per block per node: {statistics.median(per_block_us):.1f} us")
        return
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
