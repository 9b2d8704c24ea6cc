"""Executes committed blocks strictly in height order and stores each in one synced batch.

For every sealed block handed over by the engine, `execute` checks that it links to the
stored chain and that its header attests the same execution results this node computed
(exec_height = height - pipeline_depth), runs the services, and writes block, seal, tx
index, results, app hash and state writes with one `commit_block` (one LevelDB
WriteBatch, sync=True). Only then do subscribers, waiters and metrics see it.

A committed block that does not link, or whose attested app hash differs from ours, means
this node's state has diverged from a quorum's or our own code is wrong: we raise
`ConsensusFailure` and the node halts rather than guess (CometBFT's "CONSENSUS FAILURE").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protocol.crypto import ZERO_HASH
from protocol.results import encode_results
from protocol.sealed import SealedBlock
from services.codes import Code
from services.interface import Application, BlockInfo, BlockOutcome
from storage.interface import BlockCommit, ChainStore

log = logging.getLogger(__name__)


class ConsensusFailure(RuntimeError):
    """The committed chain and this node's state disagree. The node must stop."""


# Committed state reads remembered by `StoreStateView`, absent keys included: a tx's replay
# key and a new document's key are read by check_tx on admission and again by execution, and
# a LevelDB miss costs more than the rest of the tx's bookkeeping. Sized above the mempool's
# default 20,000 txs (two reads each) so the first read is still here when the tx executes,
# and bounded in bytes too (a value above 1/64 of the budget is never kept). The hot present
# keys (agency records) stay at the recent end. Block execution's own misses of absent keys
# are not kept (`BlockStateView`): the block is about to write those very keys. Nor are keys
# the store knows absent without a read (`ChainStore.state_may_hold`, LevelDB's key filter).
STATE_READS_CACHED = 65_536
STATE_READ_BYTES_CACHED = 16 * 1024 * 1024  # keys + values held, whatever the value sizes
_NOT_CACHED = object()


class StoreStateView:
    """services.interface.StateView over the committed state of a ChainStore, with a bounded
    LRU of reads. Every state write goes through `BlockExecutor.execute`, which calls
    `forget` with the block's written keys once they are durable, so a cached read is never
    stale.

    Shared by the executor's worker thread and the event loop's check_tx. Changes to the
    cache take the lock; lookups do not (a dict lookup is atomic under the GIL). A miss
    notes the generation before it reads the store, so a read that raced with a `forget`
    is returned but not cached (the generation moved) and a stale value is never kept."""

    def __init__(
        self,
        store: ChainStore,
        *,
        cached_max: int = STATE_READS_CACHED,
        cached_bytes_max: int = STATE_READ_BYTES_CACHED,
    ) -> None:
        assert cached_max >= 0
        assert cached_bytes_max >= 0
        self._store = store
        self._cached_max = cached_max
        self._bytes_max = cached_bytes_max
        # A value above 1/64 of the budget is never kept; with no entries allowed, none is.
        self._entry_bytes_max = cached_bytes_max // 64 if cached_max else -1
        self._values: OrderedDict[bytes, bytes | None] = OrderedDict()  # None: absent
        self._bytes = 0  # len(key) + len(value) over the entries held
        self._lock = threading.Lock()
        self._generation = 0

    def get(self, key: bytes, *, keep_absent: bool = True) -> bytes | None:
        """The committed value of `key` (None: absent). `keep_absent=False` reads without
        caching an absent key (see `BlockStateView`); a cached answer is returned either way.
        """
        # A hit takes no lock: one dict lookup is atomic under the GIL, and what it returns
        # was committed state when `forget` last ran, exactly as under the lock. Refreshing
        # the entry's LRU position is best effort: `forget` may have dropped it meanwhile.
        values = self._values
        cached = values.get(key, _NOT_CACHED)
        if cached is not _NOT_CACHED:
            try:  # noqa: SIM105  (contextlib.suppress cost ~0.4 us per hit, ~2 hits per tx)
                values.move_to_end(key)
            except KeyError:
                pass
            assert cached is None or isinstance(cached, bytes)
            return cached
        if not self._store.state_may_hold(key):
            return None  # known absent without a read: cheaper to ask again than to keep
        generation = self._generation  # read before the store: see the class docstring
        value = self._store.state_get(key)
        if value is None and not keep_absent:
            return None
        size = len(key) if value is None else len(key) + len(value)
        if size <= self._entry_bytes_max:
            with self._lock:
                if generation == self._generation and key not in self._values:
                    self._values[key] = value
                    self._bytes += size
                    if len(self._values) > self._cached_max or self._bytes > self._bytes_max:
                        self._evict_over_bounds()
        return value

    def _evict_over_bounds(self) -> None:
        while len(self._values) > self._cached_max or self._bytes > self._bytes_max:
            old_key, old_value = self._values.popitem(last=False)
            self._bytes -= _entry_bytes(old_key, old_value)
        assert self._bytes >= 0

    def forget(self, keys: Iterable[bytes]) -> None:
        """These keys were just written: drop any cached value of theirs."""
        with self._lock:
            self._generation += 1
            # A block writes thousands of keys and few of them are cached: the intersection
            # finds those in one pass in C.
            for key in self._values.keys() & keys:
                self._bytes -= _entry_bytes(key, self._values.pop(key))

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._store.state_scan(prefix, start_after=start_after, limit=limit)


class BlockStateView:
    """The StateView block execution reads through: a `StoreStateView`'s cache, except
    that a miss on an absent key is not kept. Such a key is almost always one the block
    is about to write (a tx's replay key, a new document's key), so `forget` would drop it
    a moment later; keeping it would only cost an insertion, an eviction and a removal per
    read, and push hot entries out. Present values (agency records, balances) are kept."""

    __slots__ = ("_view",)

    def __init__(self, view: StoreStateView) -> None:
        self._view = view

    def get(self, key: bytes) -> bytes | None:
        return self._view.get(key, keep_absent=False)

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._view.scan(prefix, start_after=start_after, limit=limit)


def _entry_bytes(key: bytes, value: bytes | None) -> int:
    return len(key) + (0 if value is None else len(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutedBlock:
    sealed: SealedBlock
    block_hash: bytes
    outcome: BlockOutcome
    tx_hashes: tuple[bytes, ...]
    execute_seconds: float
    store_seconds: float


class BlockExecutor:
    def __init__(
        self,
        *,
        store: ChainStore,
        app: Application,
        chain_id: str,
        pipeline_depth: int,
        state: StoreStateView | None = None,
    ) -> None:
        self._store = store
        self._app = app
        self._chain_id = chain_id
        self._pipeline_depth = pipeline_depth
        self._state = state or StoreStateView(store)
        self._block_state = BlockStateView(self._state)

    def expected_exec_fields(self, height: int) -> tuple[int, bytes, bytes]:
        """(exec_height, app hash, results root) a header at `height` must attest."""
        exec_height = max(0, height - self._pipeline_depth)
        if exec_height == 0:
            return 0, ZERO_HASH, ZERO_HASH
        app_hash = self._store.app_hash(exec_height)
        results_root = self._store.results_root(exec_height)
        assert app_hash is not None, f"height {height} needs {exec_height} executed"
        assert results_root is not None
        return exec_height, app_hash, results_root

    def execute(self, sealed: SealedBlock) -> ExecutedBlock:
        """Runs in a worker thread: plyvel and libsodium release the GIL."""
        block = sealed.block
        height = block.height
        committed = self._store.committed_height()
        assert height == committed + 1, f"executing {height} after {committed}"
        self._check_links(sealed)
        started = time.perf_counter()
        prev_app_hash = self._store.app_hash(height - 1)
        assert prev_app_hash is not None
        info = BlockInfo(
            chain_id=self._chain_id,
            height=height,
            time_ms=block.header.time_ms,
            proposer=block.header.proposer,
        )
        outcome = self._app.execute_block(
            info, block.txs, self._block_state, prev_app_hash=prev_app_hash
        )
        assert len(outcome.results) == len(block.txs)
        executed_at = time.perf_counter()
        tx_hashes = tuple(block.tx_hashes())
        block_hash = block.hash()
        self._store.commit_block(
            BlockCommit(
                height=height,
                block_hash=block_hash,
                block=block.encode(),
                seal=sealed.seal.encode(),
                tx_hashes=tx_hashes,
                results=encode_results(outcome.results),
                results_root=outcome.results_root,
                app_hash=outcome.app_hash,
                state_writes=outcome.writes,
                unindexed_txs=self._already_indexed_replays(tx_hashes, outcome),
            )
        )
        self._state.forget(outcome.writes)
        stored_at = time.perf_counter()
        return ExecutedBlock(
            sealed=sealed,
            block_hash=block_hash,
            outcome=outcome,
            tx_hashes=tx_hashes,
            execute_seconds=executed_at - started,
            store_seconds=stored_at - executed_at,
        )

    def _already_indexed_replays(
        self, tx_hashes: tuple[bytes, ...], outcome: BlockOutcome
    ) -> frozenset[int]:
        """Txs that executed as replays because the very same tx committed before (a new
        primary or leader ordered it again): the index keeps pointing at the first copy.
        Replays are rare, so the store lookups are few."""
        return frozenset(
            index
            for index, result in enumerate(outcome.results)
            if result.code == Code.REPLAYED and self._store.tx_location(tx_hashes[index])
        )

    def _check_links(self, sealed: SealedBlock) -> None:
        header = sealed.block.header
        height = header.height
        if header.chain_id != self._chain_id:
            raise ConsensusFailure(f"block {height} is for chain {header.chain_id!r}")
        prev_hash = ZERO_HASH if height == 1 else self._store.block_hash(height - 1)
        if header.prev_hash != prev_hash:
            raise ConsensusFailure(
                f"block {height} links to {header.prev_hash.hex()}, stored "
                f"{(prev_hash or b'').hex()}"
            )
        expected = self.expected_exec_fields(height)
        attested = (header.exec_height, header.exec_app_hash, header.exec_results_root)
        if attested != expected:
            raise ConsensusFailure(
                f"block {height} attests exec height {attested[0]} app hash "
                f"{attested[1].hex()}, this node computed {expected[1].hex()} at "
                f"{expected[0]}: state diverged"
            )
