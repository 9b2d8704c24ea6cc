"""Background signature checks of standby txs (`StandbyVerifier`), off the block's path.

Why a module of its own: node/standby.py keeps gossiped txs (the store) and promotes them
when this node leads; this verifies their signatures as they arrive, so the block carrying
them finds them in the verified cache. The two share only the store: the verifier reads it
to skip entries that left and drops forged ones from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node import limits
from node.mempool import Mempool
from node.standby import StandbyStore
from protocol.encoding import DecodeError
from protocol.tx import Tx, decode_tx

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StandbyVerifyCounters:
    queued: int = 0
    verified: int = 0  # good signatures, now in the verified cache
    forged: int = 0  # undecodable or a bad signature: dropped from standby
    skipped_full: int = 0  # the queue was full: left to the block path
    skipped_stale: int = 0  # verified, claimed by a block, or gone from standby, when reached
    waits: int = 0  # a carried block waited for a chunk in flight that it shares txs with


class StandbyVerifier:
    """Verifies standby txs' signatures in the background as they arrive, so the block
    carrying them (PRE-PREPARE, AppendEntries) finds them in the verified cache and the
    backup answers without ~40 µs of verify per tx on the critical path. Every node
    verifies every tx once anyway; this only moves the work earlier, off the block's path.

    One task drains a bounded queue `chunk_txs` at a time: decode (memoised by exact bytes,
    so the block's decode is a hit later), then `Mempool.verify_and_remember` in the verify
    threads. `enqueue` is a deque append, and when the queue is full the overflow is skipped
    (counted) — the block path verifies those, as before; only a small batch (at most
    `verify_inline_txs_max`, which the task would verify on the loop's thread too) that
    finds the verifier idle is verified in `enqueue` itself, sparing the task's wake-up.
    Entries that left standby (committed, evicted, promoted) or got verified meanwhile are
    skipped.

    Safe because nothing is trusted early: a good verdict only adds the tx's own hash (of
    its exact bytes) to the verified cache, which is what admission and the block path do
    themselves; a forged tx is dropped from standby and stays in gossip's seen-cache, so
    re-sent copies cost a dict lookup, not a verify (a block carrying it is still rejected
    by the block path, which verifies whatever is not in the cache)."""

    def __init__(
        self,
        store: StandbyStore,
        *,
        mempool: Mempool,
        queue_txs_max: int,
        chunk_txs: int,
        on_task_done: Callable[[asyncio.Task[None]], None] = lambda _task: None,
    ) -> None:
        assert 1 <= chunk_txs <= queue_txs_max
        self._store = store
        self._mempool = mempool
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._queue_txs_max = queue_txs_max
        self._chunk_txs = chunk_txs
        self._on_task_done = on_task_done
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()  # queue empty and no chunk in flight
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._in_flight: frozenset[bytes] = frozenset()
        self._chunk_done: asyncio.Event | None = None
        self._claimed: frozenset[bytes] = frozenset()  # the latest block's txs (settle)
        self.counters = StandbyVerifyCounters()

    def __len__(self) -> int:
        return len(self._queue)

    def enqueue(self, items: Sequence[tuple[bytes, bytes]]) -> int:
        """Queue (hash, raw) pairs just kept in standby; returns how many were queued. A
        batch of at most `verify_inline_txs_max` txs (a gossip frame, usually) that finds
        the verifier idle (nothing queued, no chunk in flight) is verified at once instead:
        the task would verify it on this thread in its next step anyway (too few txs for
        the verify threads), so waking it only cost time."""
        if self._stopped or not items:
            return 0
        if len(items) <= limits.verify_inline_txs_max and not self._queue and not self._in_flight:
            self.counters.queued += len(items)
            hashes, txs = self._decode_fresh(items)
            if txs:
                self._record(hashes, self._mempool.verify_and_remember_now(txs, hashes))
            return len(items)
        room = self._queue_txs_max - len(self._queue)
        taken = items[: max(room, 0)]
        self._queue.extend(taken)
        self.counters.queued += len(taken)
        self.counters.skipped_full += len(items) - len(taken)
        if taken:
            self._start()
            self._drained.clear()
            self._wakeup.set()
        return len(taken)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="standby-verify")
            self._task.add_done_callback(self._on_task_done)

    async def settle(self, tx_hashes: Sequence[bytes]) -> None:
        """A block carrying `tx_hashes` arrived and its path is about to verify whatever is
        not in the verified cache: claim them, so chunks taken from now on skip them, and
        wait for any chunk in flight that shares txs with it. Either way no tx is verified
        twice. Only the latest block's hashes are kept as the claim (one per-peer ingress
        worker handles blocks one at a time), so the claim is bounded by a block."""
        self._claimed = frozenset(tx_hashes)
        while True:
            done = self._chunk_done
            if done is None or done.is_set() or self._in_flight.isdisjoint(tx_hashes):
                return
            self.counters.waits += 1
            await done.wait()

    async def idle(self) -> None:
        """Wait until the queue is drained and no chunk is in flight (for tests, benches)."""
        await self._drained.wait()

    async def stop(self) -> None:
        self._stopped = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._drained.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            count = min(self._chunk_txs, len(self._queue))
            await self._verify_chunk([self._queue.popleft() for _ in range(count)])

    async def _verify_chunk(self, chunk: list[tuple[bytes, bytes]]) -> None:
        hashes, txs = self._decode_fresh(chunk)
        if not txs:
            return
        done = asyncio.Event()
        self._in_flight, self._chunk_done = frozenset(hashes), done
        try:
            verdicts = await self._mempool.verify_and_remember(txs, hashes)
        finally:
            self._in_flight = frozenset()
            done.set()
        self._record(hashes, verdicts)

    def _record(self, hashes: list[bytes], verdicts: list[bool]) -> None:
        for tx_hash, good in zip(hashes, verdicts, strict=True):
            if good:
                self.counters.verified += 1
            else:
                self._drop_forged(tx_hash)

    def _decode_fresh(self, chunk: Sequence[tuple[bytes, bytes]]) -> tuple[list[bytes], list[Tx]]:
        """The chunk's entries still in standby, not yet verified and not claimed by a block
        being verified (`settle`), decoded; undecodable ones are dropped as forged
        (admission would refuse them too)."""
        hashes: list[bytes] = []
        txs: list[Tx] = []
        for tx_hash, raw in chunk:
            if (
                tx_hash not in self._store
                or tx_hash in self._mempool.verified
                or tx_hash in self._claimed
            ):
                self.counters.skipped_stale += 1
                continue
            try:
                tx = decode_tx(raw, digest=tx_hash)  # gossip hashed it: no SHA-256 again
            except DecodeError:
                self._drop_forged(tx_hash)
                continue
            hashes.append(tx_hash)
            txs.append(tx)
        return hashes, txs

    def _drop_forged(self, tx_hash: bytes) -> None:
        self.counters.forged += 1
        self._store.drop_forged(tx_hash)
        if self.counters.forged <= 10 or self.counters.forged % 1_000 == 0:
            log.warning(
                "dropped a forged standby tx %s (%d so far)",
                tx_hash.hex()[:12],
                self.counters.forged,
            )
