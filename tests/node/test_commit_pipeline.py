"""CommitPipeline: blocks executed and stored in order, listeners told after durability, and
a stored block's memoised encoding released (blocks an engine keeps after commit must not
hold a second copy of their bytes). Also the driver's pieces it shares or feeds: the
blocking worker thread and the bounded peer inbox."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence

import pytest

from consensus.types import NOTHING, EngineStatus, Event, NodeId, Output, Received, Tick
from node.blocking_worker import BlockingWorker
from node.commits import CommitPipeline
from node.driver import EngineDriver
from node.executor import BlockExecutor, ExecutedBlock
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.results import TxResult, results_root
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote
from protocol.sealed import SealedBlock
from protocol.tx import Tx, sign_tx
from services.interface import BlockInfo, BlockOutcome, StateView
from storage.memory import MemoryChainStore
from tests.node.driver_fakes import LEADER_STATUS

CHAIN = "pipeline-chain"
KEY = SigningKey(hashlib.sha256(b"pipeline").digest())
GENESIS_APP_HASH = hashlib.sha256(b"genesis app").digest()


class CountingApp:
    """A minimal Application: every tx succeeds and writes one key; the app hash chains."""

    def execute_block(
        self, info: BlockInfo, txs: Sequence[Tx], state: StateView, *, prev_app_hash: bytes
    ) -> BlockOutcome:
        results = tuple(TxResult(code=0, log="ok") for _ in txs)
        writes: Mapping[bytes, bytes | None] = {b"tx/" + tx.hash(): b"1" for tx in txs}
        root = results_root(results)
        app_hash = hashlib.sha256(prev_app_hash + root).digest()
        return BlockOutcome(results=results, writes=writes, app_hash=app_hash, results_root=root)


def _sealed(height: int, prev_hash: bytes, exec_fields: tuple[int, bytes, bytes]) -> SealedBlock:
    txs = tuple(
        sign_tx(KEY, chain_id=CHAIN, nonce=height * 100 + i, expiry_height=99, kind="k", body=b"b")
        for i in range(3)
    )
    block: Block = make_block(
        chain_id=CHAIN,
        height=height,
        prev_hash=prev_hash,
        time_ms=height,
        proposer=KEY.public_key,
        txs=txs,
        validators_hash=b"\x01" * 32,
        exec_height=exec_fields[0],
        exec_app_hash=exec_fields[1],
        exec_results_root=exec_fields[2],
    )
    vote = sign_commit_vote(KEY, chain_id=CHAIN, view=0, height=height, block_hash=block.hash())
    seal = Seal(
        kind=SEAL_QUORUM, round=0, height=height, block_hash=block.hash(), signatures=((0, vote),)
    )
    return SealedBlock(block=block, seal=seal)


async def test_blocks_are_stored_in_order_then_announced_and_their_encoding_released() -> None:
    store = MemoryChainStore()
    store.set_genesis(genesis_hash=b"\x02" * 32, app_hash=GENESIS_APP_HASH)
    executor = BlockExecutor(store=store, app=CountingApp(), chain_id=CHAIN, pipeline_depth=1)  # type: ignore[arg-type]
    pipeline = CommitPipeline(executor, queue_max=2)
    announced: list[tuple[int, bool]] = []
    stored = asyncio.Event()

    def listener(executed: ExecutedBlock) -> None:
        height = executed.sealed.height
        announced.append((height, store.committed_height() >= height))
        stored.set()

    pipeline.add_listener(listener)
    runner = asyncio.create_task(pipeline.run())
    prev_hash = ZERO_HASH
    sealed_blocks = []
    for height in (1, 2, 3):
        sealed = _sealed(height, prev_hash, executor.expected_exec_fields(height))
        encoding = sealed.block.encode()
        stored.clear()
        await pipeline.enqueue(sealed)
        async with asyncio.timeout(5):
            await stored.wait()
        assert pipeline.executed_height == height
        assert store.block(height) == encoding
        sealed_blocks.append(sealed)
        prev_hash = sealed.block.hash()
    runner.cancel()
    await pipeline.settle()
    assert announced == [(1, True), (2, True), (3, True)]
    for sealed in sealed_blocks:
        assert sealed.block._encoded is None  # released once durable
        assert sealed.block.encode() == store.block(sealed.height)  # and rebuilt on demand


async def test_blocking_worker_runs_calls_in_order_in_one_thread_and_hands_back_errors() -> None:
    """The thread behind the driver's persists and the pipeline's executions."""
    threads: list[int] = []

    def double(value: int) -> int:
        threads.append(threading.get_ident())
        if value < 0:
            raise ValueError(value)
        return 2 * value

    worker = BlockingWorker(double, name="test-blocking-worker")
    assert await asyncio.gather(*(worker.run(value) for value in range(5))) == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="-1"):
        await worker.run(-1)
    # A call whose awaiting task gave up still runs to the end (a synced write is never
    # abandoned halfway); the next call waits behind it.
    abandoned = worker.run(10)
    abandoned.cancel()
    assert await worker.run(3) == 6
    assert len(threads) == 8
    assert len(set(threads)) == 1
    assert threads[0] != threading.get_ident()
    (thread,) = [t for t in threading.enumerate() if t.name == "test-blocking-worker"]
    worker.close()
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()


async def test_driver_peer_inbox_is_bounded_and_drops_are_counted() -> None:
    """The driver's peer inbox (next to the pipeline it feeds): full means dropped, never
    blocking, and counted."""

    class Idle:
        def step(self, event: Event) -> Output:
            return NOTHING

        def status(self) -> EngineStatus:
            raise AssertionError("not stepped in this test")

    def never(*_args: object) -> None:
        raise AssertionError("not called in this test")

    async def never_commit(_sealed: SealedBlock) -> None:
        raise AssertionError("not called in this test")

    driver = EngineDriver(
        Idle(),
        persist=never,
        send=never,
        commit=never_commit,
        fetch=never,
        after_step=never,
        tick_ms=20,
        peer_inbox_max=3,
    )
    offered = [driver.offer_peer(Received(NodeId(1), f"message {i}")) for i in range(5)]
    assert offered == [True, True, True, False, False]
    assert driver.peer_inbox_depth == 3
    assert driver.peer_dropped_total == 2
    await driver.settle()


async def test_driver_persists_on_the_loop_while_writes_are_quick_and_in_its_thread_when_not() -> (
    None
):
    """Quick synced writes stay on the event loop (a thread hand-off cost more CPU than
    they do); slow ones move to the worker thread, and quick ones bring them back."""
    delays_s = [0.0] * 3 + [0.004] * 12 + [0.0] * 45
    threads: list[int] = []
    written = asyncio.Event()
    loop = asyncio.get_running_loop()

    def persist(_records: object) -> None:
        threads.append(threading.get_ident())
        time.sleep(delays_s[len(threads) - 1])
        loop.call_soon_threadsafe(written.set)

    class Persisting:
        def step(self, event: Event) -> Output:
            return Output(persist=((b"key", b"value"),))

        def status(self) -> EngineStatus:
            return LEADER_STATUS

    async def no_commit(_sealed: SealedBlock) -> None:
        raise AssertionError("nothing commits in this test")

    driver = EngineDriver(
        Persisting(),
        persist=persist,
        send=lambda _envelope: None,
        commit=no_commit,
        fetch=lambda _request: None,
        after_step=lambda _status: None,
        tick_ms=60_000,
        peer_inbox_max=1,
    )
    runner = asyncio.create_task(driver.run())
    for count in range(1, len(delays_s) + 1):  # one tick per write: no group commit here
        written.clear()
        driver.post_control(Tick())
        async with asyncio.timeout(10):
            await written.wait()
        assert len(threads) == count
    runner.cancel()
    await driver.settle()
    loop_thread = threading.get_ident()
    # quick, then slow until the average says so (a 4 ms sleep can take longer: 4 for sure)
    assert threads[:4] == [loop_thread] * 4
    assert any(thread != loop_thread for thread in threads[6:15])
    assert threads[-1] == loop_thread
