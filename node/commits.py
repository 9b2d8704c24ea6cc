"""The commit pipeline: sealed blocks from the engine, executed and stored in order, then
announced.

The driver hands each sealed block to `enqueue` (awaiting room in a bounded queue, so a
slow disk slows consensus instead of growing memory). One task executes them strictly in
height order in its worker thread (services + one synced LevelDB batch) and, once a block
is durable, fans out in this order: the engine learns it was executed (checkpoints, exec
lag), the mempool drops its txs, the producer learns the chain moved, waiters of
`broadcast_tx_commit` and WebSocket subscribers are told, metrics move.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from node.blocking_worker import BlockingWorker
from node.executor import BlockExecutor, ExecutedBlock
from protocol.sealed import SealedBlock

log = logging.getLogger(__name__)

Listener = Callable[[ExecutedBlock], None]


class CommitPipeline:
    def __init__(self, executor: BlockExecutor, *, queue_max: int) -> None:
        self._queue: asyncio.Queue[SealedBlock] = asyncio.Queue(maxsize=queue_max)
        self._listeners: list[Listener] = []
        self._last_enqueued_height: int | None = None
        self._in_thread: asyncio.Future[ExecutedBlock] | None = None
        self._worker = BlockingWorker(executor.execute, name="block-execution")
        self.executed_height = 0

    def add_listener(self, listener: Listener) -> None:
        """Listeners run on the event loop, in registration order, after the block is
        durable. They must not block."""
        self._listeners.append(listener)

    async def enqueue(self, sealed: SealedBlock) -> None:
        if self._last_enqueued_height is not None:
            assert sealed.height == self._last_enqueued_height + 1, (
                f"engine committed {sealed.height} after {self._last_enqueued_height}"
            )
        self._last_enqueued_height = sealed.height
        await self._queue.put(sealed)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            sealed = await self._queue.get()
            # Shielded: cancelling this task must not abandon a worker thread halfway through
            # a store write; `settle` lets shutdown wait for it before closing the store.
            self._in_thread = self._worker.run(sealed)
            executed = await asyncio.shield(self._in_thread)
            self.executed_height = sealed.height
            sealed.block.release_encoding()  # durable now: see Block.release_encoding
            log.info(
                "committed height=%d txs=%d hash=%s app_hash=%s",
                sealed.height,
                len(sealed.block.txs),
                executed.block_hash.hex()[:16],
                executed.outcome.app_hash.hex()[:16],
            )
            for listener in self._listeners:
                listener(executed)

    async def settle(self) -> None:
        """Wait for a block execution already running in the worker thread, then end the
        thread (shutdown)."""
        if self._in_thread is not None and not self._in_thread.done():
            await asyncio.wait([self._in_thread])
        self._worker.close()
