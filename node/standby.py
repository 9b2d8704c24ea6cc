"""Standby txs: gossiped txs a non-leader keeps, unadmitted, in case it becomes the leader.

Why: only the leader (PBFT primary, Raft leader) orders txs, so only it needs them admitted
in full (decode, signature, check_tx, pool indexes). A backup that admitted every gossiped
tx paid ~50 µs per tx for nothing beyond the signature check it needs anyway for the block
carrying the tx. So a backup keeps gossiped txs here as raw bytes, keyed by the hash gossip
already computed — a dict insert per tx — and admits them in full only if it becomes the
leader (`Node` promotes them through `Mempool.add_batch`). Their signatures are checked in
the background as they arrive (`StandbyVerifier`, node/standby_verify.py), so the block
finds them in the verified cache instead of verifying ~2,000 txs between PRE-PREPARE and PREPARE.

Nothing here is trusted: an entry is raw bytes from a peer, and becomes a pool entry only
through the normal admission. So a wrong entry costs a failed admission, never a wrong
block.

Bounds: count and bytes, oldest evicted first (arrival order), so a flood from a peer costs
at most `bytes_max` of memory and pushes out only older standby txs. Liveness does not rest
on this store: the node that took a tx from its client keeps it in its own pool and re-offers
it to whoever is leader (`TxCustody.reoffer_stale_txs`); standby only saves that round trip. The
one thing standby txs must still do is make a backup suspect a primary that stopped
ordering (PBFT needs f + 1 backups with pending work): a backup that sees no commit for a
re-offer interval while standby txs wait admits them in full (`StandbyKeeper.admit_waiting`,
the same `promote` below), after which they are ordinary, checked, pending txs.

An entry *held* sits in a block another validator proposed (PRE-PREPARE, AppendEntries): it
is not promoted (a new leader would order it twice) until `release` says that block lost
its height. `remove` drops entries whose block committed. A held hash is remembered even
before its tx arrives: gossip often brings a tx after the block that carries it, and that
late copy must be held too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Container, Iterable
from dataclasses import dataclass

import msgspec

from node.mempool import Admission, Mempool

log = logging.getLogger(__name__)

OnEvict = Callable[[bytes], None]


class _Entry(msgspec.Struct, gc=False):
    """One standby tx. A msgspec Struct (half a dataclass's construction cost) the
    collector does not track: it holds only bytes and scalars, so it is in no cycle, and
    ~50,000 of them live at once."""

    raw: bytes
    seq: int  # arrival order
    held: bool = False


@dataclass(slots=True)
class StandbyCounters:
    added: int = 0
    evicted: int = 0  # pushed out by the count or byte bound
    promoted: int = 0  # handed to full admission
    removed: int = 0  # their block committed
    too_large: int = 0  # a single tx larger than the whole byte bound
    forged: int = 0  # dropped by the standby verifier: undecodable or a bad signature


class StandbyStore:
    """hash -> raw tx in arrival order, bounded by count and bytes. Not thread-safe: the
    node's event loop owns it."""

    def __init__(
        self,
        *,
        txs_max: int,
        bytes_max: int,
        on_evict: OnEvict | None = None,
        carried: Container[bytes] = frozenset(),
    ) -> None:
        assert txs_max >= 1
        assert bytes_max >= 1
        self.txs_max = txs_max
        self.bytes_max = bytes_max
        self._on_evict = on_evict
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0
        self._seq = 0
        self._carried = carried  # held hashes, arrived or not (node/carried.py)
        self.counters = StandbyCounters()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._entries

    def size_bytes(self) -> int:
        return self._bytes

    def add(self, tx_hash: bytes, raw: bytes) -> bool:
        """Keep `raw` (whose SHA-256 is `tx_hash`, computed by the caller) unless already
        kept; evicts the oldest entries to make room. False if not kept."""
        if tx_hash in self._entries:
            return False
        if len(raw) > self.bytes_max:
            self.counters.too_large += 1
            return False
        self._seq += 1
        self._entries[tx_hash] = _Entry(raw, self._seq, tx_hash in self._carried)
        self._bytes += len(raw)
        self.counters.added += 1
        while len(self._entries) > self.txs_max or self._bytes > self.bytes_max:
            self._evict_oldest()
        return True

    def add_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """`add` for (hash, raw) pairs; returns how many were kept."""
        return sum(1 for tx_hash, raw in items if self.add(tx_hash, raw))

    def _evict_oldest(self) -> None:
        tx_hash, entry = self._entries.popitem(last=False)
        self._bytes -= len(entry.raw)
        self.counters.evicted += 1
        if self._on_evict is not None:
            self._on_evict(tx_hash)

    def hold(self, tx_hashes: Iterable[bytes]) -> int:
        """Mark entries as carried by another validator's block: not promoted until
        released or removed. A tx not kept yet is held when it arrives, since the
        custody's carried record (`carried`) holds its hash. Returns how many entries
        were marked."""
        held = 0
        for tx_hash in tx_hashes:
            entry = self._entries.get(tx_hash)
            if entry is not None and not entry.held:
                entry.held = True
                held += 1
        return held

    def release(self, tx_hashes: Iterable[bytes]) -> int:
        """The block that held these entries lost its height: they may be promoted again."""
        released = 0
        for tx_hash in tx_hashes:
            entry = self._entries.get(tx_hash)
            if entry is not None and entry.held:
                entry.held = False
                released += 1
        return released

    def remove(self, tx_hashes: Iterable[bytes]) -> int:
        """Drop entries whose block committed; returns how many were dropped."""
        removed = 0
        for tx_hash in tx_hashes:
            entry = self._entries.pop(tx_hash, None)
            if entry is not None:
                self._bytes -= len(entry.raw)
                removed += 1
        self.counters.removed += removed
        return removed

    def drop_forged(self, tx_hash: bytes) -> bool:
        """Drop an entry the standby verifier found undecodable or badly signed. Unlike an
        eviction, gossip is *not* told to forget it: its seen-cache keeps the digest, so
        further copies of the forgery are dropped as duplicates without another verify."""
        entry = self._entries.pop(tx_hash, None)
        if entry is None:
            return False
        self._bytes -= len(entry.raw)
        self.counters.forged += 1
        return True

    def arrival_mark(self) -> int:
        """A mark in arrival order: entries added from now on come after it."""
        return self._seq

    def take_oldest(
        self, limit: int, skip: Callable[[bytes], bool], *, until: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Remove and return up to `limit` (hash, raw) entries that are not held, oldest
        first, for promotion; with `until` (an `arrival_mark`), only entries added at or
        before it. Entries for which `skip(hash)` is true (already in the pool) are dropped
        on the way without counting toward `limit`."""
        taken: list[tuple[bytes, bytes]] = []
        dropped: list[bytes] = []
        for tx_hash, entry in self._entries.items():
            if len(taken) >= limit or (until is not None and entry.seq > until):
                break
            if entry.held:
                continue
            if skip(tx_hash):
                dropped.append(tx_hash)
            else:
                taken.append((tx_hash, entry.raw))
        for tx_hash in dropped:
            self._bytes -= len(self._entries.pop(tx_hash).raw)
        for tx_hash, raw in taken:
            del self._entries[tx_hash]
            self._bytes -= len(raw)
        self.counters.promoted += len(taken)
        return taken

    def promotable_count(self) -> int:
        return sum(1 for entry in self._entries.values() if not entry.held)

    def check_invariants(self) -> None:
        """The byte total agrees with the entries and both bounds hold (O(n), for tests)."""
        assert self._bytes == sum(len(entry.raw) for entry in self._entries.values())
        assert len(self._entries) <= self.txs_max
        assert self._bytes <= self.bytes_max


# Refusals that may not hold for a later copy of the same tx (the pool was full, or the
# signer at its quota, at that moment): gossip must let a re-offered copy through again.
PASSING_REFUSALS = frozenset({"full", "signer_quota"})


async def promote(
    store: StandbyStore,
    *,
    admit: Callable[[list[bytes]], Awaitable[list[Admission]]],
    in_pool: Callable[[bytes], bool],
    keep_going: Callable[[], bool],
    on_refused: Callable[[bytes], None],
    batch_txs: int,
    until: int | None = None,
    total_max: int | None = None,
) -> int:
    """Hand standby txs to full admission (`Mempool.add_batch`), oldest first, `batch_txs`
    at a time, while `keep_going()`; stops when nothing promotable is left (with `until`,
    nothing that arrived by that mark; with `total_max`, after taking that many). Txs
    already in the pool are dropped unadmitted; a tx already committed fails check_tx's
    replay check. `on_refused(hash)` is called for
    txs refused for a passing reason. Returns how many txs entered the pool."""
    assert batch_txs >= 1
    added = 0
    remaining = total_max
    while keep_going() and (remaining is None or remaining > 0):
        step = batch_txs if remaining is None else min(batch_txs, remaining)
        batch = store.take_oldest(step, skip=in_pool, until=until)
        if not batch:
            break
        if remaining is not None:
            remaining -= len(batch)
        admissions = await admit([raw for _, raw in batch])
        for (tx_hash, _), admission in zip(batch, admissions, strict=True):
            if admission.added:
                added += 1
            elif admission.reason in PASSING_REFUSALS:
                on_refused(tx_hash)
        await asyncio.sleep(0)  # let the loop breathe between batches
    return added


class StandbyKeeper:
    """The node's side of standby: whether this node leads, the background promotion when
    it becomes leader, and the admission of txs that waited through an idle interval. The
    leader flag lives here alone; NodeNetwork asks `leading` for every gossip batch."""

    def __init__(
        self,
        store: StandbyStore,
        *,
        mempool: Mempool,
        forget: Callable[[bytes], None],
        on_task_done: Callable[[asyncio.Task[None]], None],
        batch_txs: int,
        idle_admit_txs: int,
    ) -> None:
        assert idle_admit_txs >= 1
        self.store = store
        self.leading = False
        self.promotion: asyncio.Task[None] | None = None
        self._mempool = mempool
        self._forget = forget
        self._on_task_done = on_task_done
        self._batch_txs = batch_txs
        self._idle_admit_txs = idle_admit_txs

    def track(self, *, leading: bool, round_: int) -> None:
        """Called after every engine step: on becoming leader, promote standby txs."""
        if leading == self.leading:
            return
        self.leading = leading
        log.info(
            "%s the leader at round %d (%d standby txs)",
            "became" if leading else "no longer",
            round_,
            len(self.store),
        )
        if leading:
            self.start_promotion()

    def released(self, tx_hashes: Iterable[bytes]) -> None:
        """The block that held these lost its height: a leader promotes them now."""
        if self.store.release(tx_hashes) and self.leading:
            self.start_promotion()

    def start_promotion(self) -> None:
        """Promote in the background, unless a promotion is running (it goes on until
        nothing promotable is left, so it takes newly released txs too)."""
        if self.promotion is not None and not self.promotion.done():
            return
        self.promotion = asyncio.get_running_loop().create_task(
            self._promote_all(), name="standby-promotion"
        )
        self.promotion.add_done_callback(self._on_task_done)

    async def _promote_all(self) -> None:
        promoted = await promote(
            self.store,
            admit=self._mempool.add_batch,
            in_pool=self._mempool.__contains__,
            keep_going=lambda: self.leading,
            on_refused=self._forget,
            batch_txs=self._batch_txs,
        )
        log.info("promoted %d standby txs into the pool", promoted)

    async def admit_waiting(self, until: int) -> int:
        """The node saw no commit for a whole re-offer interval while standby txs wait:
        admit the oldest of those that arrived by `until` in full (at most
        `idle_admit_txs`), so they count as pending work and this backup's engine suspects
        a primary that stopped ordering (PBFT needs f + 1 backups to time out; before
        standby every backup held every tx in its pool). A few txs are enough for that;
        admitting them all would make an overloaded backup, whose blocks merely take longer
        than an interval, verify its whole standby store and slow the cluster further.
        Admission checks them, so garbage from a faulty peer raises no suspicion (and
        leaves standby: the next interval takes the next oldest), and a tx already
        committed fails the replay check."""
        return await promote(
            self.store,
            admit=self._mempool.add_batch,
            in_pool=self._mempool.__contains__,
            keep_going=lambda: not self.leading,
            on_refused=self._forget,
            batch_txs=self._batch_txs,
            until=until,
            total_max=self._idle_admit_txs,
        )

    async def stop(self) -> None:
        if self.promotion is not None:
            self.promotion.cancel()
            await asyncio.gather(self.promotion, return_exceptions=True)
