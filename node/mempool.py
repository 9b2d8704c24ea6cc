"""The mempool: txs admitted but not yet committed, bounded, deduplicated, fair.

Admission runs the cheap checks first and the expensive one last, so a flood costs little:
    size -> decode -> chain id -> expiry vs next height -> duplicate hash -> duplicate
    (signer, nonce) -> pool full / signer quota -> signature -> app check against committed
    state (`admit`, the application's check_tx).
The checks on the bytes alone (size, decode, chain id) run once per submission; the pool
checks (expiry, duplicates, bounds) run before the signature check and again after it,
because the pool and the next height may change while a batch awaits its verify threads.
Before the signature check, a batch's earlier candidates already count as pooled (`_Ahead`),
so txs the batch itself crowds out of a quota or a full pool cost no verify.
Each tx is hashed once: the hash is memoised on the decoded Tx, which `decode_tx` hands out
again for the same bytes (in a block, a PRE-PREPARE), so nothing downstream re-hashes it.
A signature is verified once per node, ever: the hashes of verified txs live in a bounded
LRU (`VerifiedCache`), which block validation consults too (`ensure_verified`), so a tx that
came through this pool costs no second verify when its block arrives. The cache and the
verify threads live in node/verify_pool.py (`SignatureVerifier`); the pool delegates to it.

State of a tx in the pool: *pending* (may be reaped) or *in flight* (in a block proposed but
not yet committed; not reaped again). `reap` moves txs to in flight, `return_txs` moves them
back if the proposal is abandoned (evicting those that expired meanwhile),
`remove_committed` drops them (and any other tx with the same (signer, nonce), which can
never execute now) and then evicts expired txs. Per-commit upkeep costs the txs of the block
plus the expired ones, never a pass over the pool: expiry is indexed by height bucket.

Fairness: `reap` serves signers round-robin, each signer's txs in arrival order, and rotates
the starting signer between reaps, so one busy agency cannot starve the others; a per-signer
cap bounds what one signer may hold at all (RELIABILITY.md R4).

Invariant (CVE-2023-34451 was a list/map disagreement): every index agrees with `_entries`;
`check_invariants` asserts it and the tests call it after every operation.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from node import limits
from node.api import SubmitResult
from node.verify_pool import SignatureVerifier, VerifiedCache
from protocol.crypto import sha256
from protocol.encoding import DecodeError
from protocol.results import TxResult
from protocol.tx import Tx, decode_tx

log = logging.getLogger(__name__)

CODESPACE = "mempool"
# Result codes in codespace "mempool" (docs/CONFIG.md §mempool). 0 is admitted.
REASON_CODES: dict[str, int] = {
    "decode": 1,
    "too_large": 2,
    "wrong_chain": 3,
    "expired": 4,
    "duplicate": 0,  # already pending: the client's goal is met, so not an error
    "duplicate_nonce": 6,
    "bad_signature": 7,
    "full": 8,
    "signer_quota": 9,
}
APP_CODESPACE = "app"

# admit(tx, next_height): the application's check_tx against committed state.
Admit = Callable[[Tx, int], TxResult]


class Admission(msgspec.Struct, kw_only=True, gc=False):
    """What happened to one submitted tx: the client's answer (`result`), whether the tx
    is new to the pool (`added`, what the node gossips) and the rejection counter label
    (`reason`, or ""). One is built per submitted tx, so it is a msgspec Struct (a quarter
    of a frozen dataclass's construction cost) that the collector does not track (it
    refers only to objects that never refer back, so it can be in no cycle), and the
    SubmitResult is built only when asked for: gossip's admissions never need one."""

    tx_hash: bytes
    code: int
    log: str = ""
    codespace: str = CODESPACE
    reason: str = ""
    added: bool = False
    tx: Tx | None = None

    @property
    def result(self) -> SubmitResult:
        return SubmitResult(
            tx_hash=self.tx_hash, code=self.code, log=self.log, codespace=self.codespace
        )


class _Entry(msgspec.Struct, gc=False):
    """A pooled tx. A gc-free msgspec Struct like Admission: one lives per pooled tx, and
    untracked entries neither trigger collections nor make them longer."""

    tx: Tx
    raw: bytes
    tx_hash: bytes
    seq: int  # arrival order, for returning in-flight txs to their place
    in_flight: bool = False

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(slots=True)
class _Ahead:
    """The candidates `_screen` passed earlier in the same slice, counted as if admitted.

    Without them, every tx of a slice was checked against the pool as it was before the
    slice, so under overload a 500-tx gossip batch from one signer with 100 slots left in
    its quota had all 500 signatures verified and 400 txs refused afterwards (the primary
    of a saturated cluster ran ~1.5 verifies per committed tx). Counting them refuses those
    400 before their verify. Should an earlier candidate fail its signature or check_tx, a
    later one may have been refused that would have fitted: a passing refusal ("full",
    "signer_quota"), which the client's node re-offers."""

    hashes: set[bytes] = field(default_factory=set)
    replay_keys: set[bytes] = field(default_factory=set)
    per_signer: dict[bytes, int] = field(default_factory=dict)
    txs: int = 0
    size_bytes: int = 0

    def take(self, tx: Tx, tx_hash: bytes) -> None:
        self.hashes.add(tx_hash)
        self.replay_keys.add(tx.replay_key)
        self.per_signer[tx.signer] = self.per_signer.get(tx.signer, 0) + 1
        self.txs += 1
        self.size_bytes += len(tx.encode())


class _Screened(NamedTuple):
    """A slice of txs between `Mempool._screen` and `Mempool._settle`."""

    results: list[Admission | None]  # per tx: its admission, once decided
    candidates: list[tuple[int, Tx, bytes, bool]]  # (index, tx, hash, needs a verify)
    fresh: list[Tx]  # the candidates to verify, in order
    good: set[bytes]  # hashes known to carry a valid signature


@dataclass(slots=True, kw_only=True)
class MempoolLimits:
    max_txs: int = limits.mempool_txs_default
    max_bytes: int = limits.mempool_bytes_default
    max_tx_bytes: int = limits.mempool_tx_bytes_default
    max_txs_per_signer: int = limits.mempool_txs_per_signer_default
    verified_cache_size: int = limits.verified_cache_size_default


@dataclass(slots=True)
class _Counters:
    rejected: dict[str, int] = field(default_factory=dict)
    verifications: int = 0  # signature checks actually run (cache misses)
    added: int = 0
    evicted_expired: int = 0


def _accept_all(tx: Tx, next_height: int) -> TxResult:
    return TxResult(code=0)


class Mempool:
    """Not thread-safe: every method runs on the node's event loop. Only signature checks
    of a batch leave it, and they touch no pool state."""

    def __init__(
        self,
        *,
        chain_id: str,
        next_height: int,
        pool_limits: MempoolLimits | None = None,
        admit: Admit = _accept_all,
        on_reject: Callable[[str], None] | None = None,
        carried: Container[bytes] = frozenset(),
    ) -> None:
        self.chain_id = chain_id
        self.next_height = next_height
        self.limits = pool_limits or MempoolLimits()
        self._admit = admit
        self._on_reject = on_reject
        self.verified = VerifiedCache(self.limits.verified_cache_size)
        self.counters = _Counters()
        self.signatures = SignatureVerifier(self.verified, self.counters)
        self._entries: dict[bytes, _Entry] = {}
        self._by_replay: dict[bytes, bytes] = {}  # replay key -> tx hash
        self._per_signer_count: dict[bytes, int] = {}
        # Pending (reapable) txs: signer -> {tx hash: None} in arrival order; the dict order
        # of `_queues` is the round-robin order of signers.
        self._queues: OrderedDict[bytes, dict[bytes, None]] = OrderedDict()
        # Expiry index: expiry height -> {tx hash: None} for every pending tx (and in-flight
        # txs not yet past their height), plus a min-heap of those heights. Removing a tx
        # is a dict delete, and evicting touches only expired buckets: O(txs removed), never
        # O(pool). The heap may hold heights whose bucket is gone (skipped when popped);
        # it is rebuilt from the buckets when such stale heights pile up.
        self._by_expiry: dict[int, dict[bytes, None]] = {}
        self._expiry_heights: list[int] = []
        self._bytes = 0
        self._pending = 0
        self._seq = 0
        # Hashes of txs in blocks other validators proposed whose height is not decided yet,
        # pooled or not (node/carried.py, kept by the custody): a tx that arrives *after*
        # its carrier block (gossip slower than consensus, a client retrying at another
        # node, a re-offer) enters in flight, so a new leader never orders it a second time.
        self._carried = carried

    # --- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._entries

    def size_bytes(self) -> int:
        """Encoded bytes of every tx held, in flight included (what the byte bound counts)."""
        return self._bytes

    def pending_count(self) -> int:
        """Txs that a block could take now (held minus in flight)."""
        return self._pending

    def rejected_counts(self) -> dict[str, int]:
        return dict(self.counters.rejected)

    def pending_txs(self, limit: int) -> list[Tx]:
        """Up to `limit` txs in arrival order (RPC unconfirmed_txs)."""
        # `_entries` is in arrival order: entries are inserted once, with increasing seq.
        return [entry.tx for entry in itertools.islice(self._entries.values(), max(0, limit))]

    def arrival_mark(self) -> int:
        """A mark in arrival order: txs admitted from now on come after it."""
        return self._seq

    def pending_raws_before(self, mark: int, limit: int) -> list[bytes]:
        """Up to `limit` pending (not in flight) txs admitted at or before `mark`, oldest
        first: the txs that have waited here at least since the mark was taken."""
        raws: list[bytes] = []
        for entry in self._entries.values():  # insertion order is arrival order
            if entry.seq > mark or len(raws) >= limit:
                break
            if not entry.in_flight:
                raws.append(entry.raw)
        return raws

    # --- admission -----------------------------------------------------------------------

    def add(self, raw: bytes) -> Admission:
        """Admit one tx synchronously (verifying its signature on the calling thread)."""
        checked = self._static_check(raw)
        if isinstance(checked, Admission):
            return checked
        tx, tx_hash = checked
        refusal = self._pool_check(tx, tx_hash)
        if refusal is not None:
            return refusal
        if not self.verified.touch(tx_hash):
            self.counters.verifications += 1
            if not tx.verify_signature():
                return self._reject(tx_hash, "bad_signature", "signature does not verify")
            self.verified.add(tx_hash)
        return self._finish(tx, tx_hash)

    async def add_batch(
        self, raws: Sequence[bytes], digests: Sequence[bytes] | None = None
    ) -> list[Admission]:
        """Admit many txs, verifying signatures off the event loop in chunks. Results are in
        the order of `raws`; within the batch, earlier txs win duplicate and quota checks.
        Large inputs are taken `add_batch_txs_max` at a time, bounding the work per step.
        `digests`, if given, are the SHA-256 of each raw tx (gossip computed them for its
        seen-cache): they are memoised on the decoded txs instead of hashing again."""
        assert digests is None or len(digests) == len(raws), "one digest per tx"
        if len(raws) <= limits.verify_inline_txs_max:
            return self.add_small_batch(raws, digests)
        step = limits.add_batch_txs_max
        admissions: list[Admission] = []
        for start in range(0, len(raws), step):
            end = start + step
            chunk = None if digests is None else digests[start:end]
            screened = self._screen(raws[start:end], chunk)
            verdicts = await self.signatures.verify_many(screened.fresh)
            admissions.extend(self._settle(screened, verdicts))
        return admissions

    def add_small_batch(
        self, raws: Sequence[bytes], digests: Sequence[bytes] | None = None
    ) -> list[Admission]:
        """`add_batch` for at most `verify_inline_txs_max` txs, whose signatures are checked
        on this thread: it never awaits, so a caller needs no task to run it (a gossip
        batch at the leader is usually a few txs). Same checks, same results."""
        assert len(raws) <= limits.verify_inline_txs_max
        assert digests is None or len(digests) == len(raws), "one digest per tx"
        screened = self._screen(raws, digests)
        return self._settle(screened, self.signatures.verify_inline(screened.fresh))

    def _screen(self, raws: Sequence[bytes], digests: Sequence[bytes] | None) -> _Screened:
        """First half of admitting a slice of at most `add_batch_txs_max` txs: the static
        checks (size, decode, chain) once per tx, and the pool checks before the signature
        checks, so a tx the pool would refuse costs no verify. `_settle` finishes the slice
        once `fresh` is verified."""
        assert len(raws) <= limits.add_batch_txs_max
        screened = _Screened([None] * len(raws), [], [], set())
        results, candidates, fresh, good = screened
        ahead = _Ahead()
        for index, raw in enumerate(raws):
            checked = self._static_check(raw, None if digests is None else digests[index])
            if isinstance(checked, Admission):
                results[index] = checked
                continue
            tx, tx_hash = checked
            repeat = tx_hash in ahead.hashes  # `_settle` answers it "duplicate"
            refusal = self._pool_check(tx, tx_hash, None if repeat else ahead)
            if refusal is not None:
                results[index] = refusal
                continue
            if self.verified.touch(tx_hash):
                good.add(tx_hash)
            # A repeat within the batch, or a tx verified earlier, needs no verify of its own.
            needs_verify = not repeat and tx_hash not in good
            if not repeat:
                ahead.take(tx, tx_hash)
            candidates.append((index, tx, tx_hash, needs_verify))
            if needs_verify:
                fresh.append(tx)
        return screened

    def _settle(self, screened: _Screened, verdicts: list[bool]) -> list[Admission]:
        """Second half: remember the good signatures, then run the pool checks again,
        because the pool may have changed while the verify was awaited (and earlier txs of
        this slice are inserted by then), and admit what passes."""
        results, candidates, _, good = screened
        verdict = iter(verdicts)
        for index, tx, tx_hash, needs_verify in candidates:
            if needs_verify and next(verdict):
                self.verified.add(tx_hash)
                good.add(tx_hash)
            if tx_hash not in good:
                results[index] = self._reject(tx_hash, "bad_signature", "bad signature")
                continue
            refusal = self._pool_check(tx, tx_hash)
            results[index] = refusal if refusal is not None else self._finish(tx, tx_hash)
        final = [result for result in results if result is not None]
        assert len(final) == len(results), "every tx gets exactly one admission"
        return final

    def _static_check(
        self, raw: bytes, digest: bytes | None = None
    ) -> Admission | tuple[Tx, bytes]:
        """Checks that depend on the bytes alone (size, strict decode, chain id): their
        verdict never changes, so they run once per submission. The decoded tx and its hash
        if all pass. The hash is memoised on the Tx (decode_tx returns one object per byte
        string), so block validation, the block builder and the executor do not hash it again;
        `digest`, the caller's SHA-256 of `raw` if it has one, saves hashing it at all."""
        if len(raw) > self.limits.max_tx_bytes:
            tx_hash = sha256(raw) if digest is None else digest
            return self._reject(tx_hash, "too_large", f"tx is {len(raw)} bytes")
        try:
            tx = decode_tx(raw, digest=digest)
        except DecodeError as error:
            return self._reject(sha256(raw) if digest is None else digest, "decode", str(error))
        tx_hash = tx.hash()  # decode is strict, so this is the hash of `raw` itself
        if tx.chain_id != self.chain_id:
            return self._reject(tx_hash, "wrong_chain", f"tx is for chain {tx.chain_id!r}")
        return tx, tx_hash

    def _pool_check(self, tx: Tx, tx_hash: bytes, ahead: _Ahead | None = None) -> Admission | None:
        """Checks against the pool and the next height, which can change across an await;
        each is a comparison or a dict lookup. None if the tx may enter. With `ahead`, the
        candidates screened before it in its slice count as if already in the pool."""
        if tx.expiry_height < self.next_height:
            return self._reject(
                tx_hash, "expired", f"expired at {tx.expiry_height}, next {self.next_height}"
            )
        entries = self._entries
        if tx_hash in entries:
            return self._reject(tx_hash, "duplicate", "already in the mempool")
        replay_key = tx.replay_key
        signer_count = self._per_signer_count.get(tx.signer, 0)
        count = len(entries)
        size_bytes = self._bytes + len(tx.encode())
        if ahead is not None:
            if replay_key in ahead.replay_keys:
                return self._reject(tx_hash, "duplicate_nonce", "same signer and nonce pending")
            signer_count += ahead.per_signer.get(tx.signer, 0)
            count += ahead.txs
            size_bytes += ahead.size_bytes
        if replay_key in self._by_replay:
            return self._reject(tx_hash, "duplicate_nonce", "same signer and nonce pending")
        pool_limits = self.limits
        if count >= pool_limits.max_txs or size_bytes > pool_limits.max_bytes:
            return self._reject(tx_hash, "full", "mempool full, retry later")
        if signer_count >= pool_limits.max_txs_per_signer:
            return self._reject(tx_hash, "signer_quota", "too many pending txs from this signer")
        return None

    def _finish(self, tx: Tx, tx_hash: bytes) -> Admission:
        """Signature known good: ask the application, then insert."""
        assert tx_hash == tx.hash(), "a tx is indexed by the (memoised) hash of its own bytes"
        verdict = self._admit(tx, self.next_height)
        if not verdict.ok:
            reason = f"app_{verdict.code}"
            self._count(reason)
            return Admission(
                tx_hash=tx_hash,
                code=verdict.code,
                log=verdict.log,
                codespace=APP_CODESPACE,
                reason=reason,
            )
        self._insert(tx, tx_hash)
        return Admission(tx_hash=tx_hash, code=0, added=True, tx=tx)

    def _reject(self, tx_hash: bytes, reason: str, message: str) -> Admission:
        self._count(reason)
        return Admission(tx_hash=tx_hash, code=REASON_CODES[reason], log=message, reason=reason)

    def _count(self, reason: str) -> None:
        self.counters.rejected[reason] = self.counters.rejected.get(reason, 0) + 1
        if self._on_reject is not None:
            self._on_reject(reason)

    # --- pool structure ------------------------------------------------------------------

    def _insert(self, tx: Tx, tx_hash: bytes) -> None:
        self._seq += 1
        raw = tx.encode()
        signer = tx.signer
        self._entries[tx_hash] = _Entry(tx, raw, tx_hash, self._seq)
        self._by_replay[tx.replay_key] = tx_hash
        counts = self._per_signer_count
        counts[signer] = counts.get(signer, 0) + 1
        if tx_hash in self._carried:
            self._entries[tx_hash].in_flight = True  # its carrier block decides (see `hold`)
        else:
            queue = self._queues.get(signer)
            if queue is None:
                queue = self._queues[signer] = {}
            queue[tx_hash] = None
            self._pending += 1
        expiry = tx.expiry_height
        bucket = self._by_expiry.get(expiry)
        if bucket is None:
            bucket = self._by_expiry[expiry] = {}
            heapq.heappush(self._expiry_heights, expiry)
        bucket[tx_hash] = None
        self._bytes += len(raw)
        self.counters.added += 1

    def _drop(self, tx_hash: bytes) -> _Entry | None:
        entry = self._entries.pop(tx_hash, None)
        if entry is None:
            return None
        signer = entry.tx.signer
        del self._by_replay[entry.tx.replay_key]
        remaining = self._per_signer_count[signer] - 1
        if remaining:
            self._per_signer_count[signer] = remaining
        else:
            del self._per_signer_count[signer]
        if not entry.in_flight:
            queue = self._queues[signer]
            del queue[tx_hash]
            if not queue:
                del self._queues[signer]
            self._pending -= 1
        bucket = self._by_expiry.get(entry.tx.expiry_height)
        if bucket is not None:
            bucket.pop(tx_hash, None)
            if not bucket:
                del self._by_expiry[entry.tx.expiry_height]  # its heap height is now stale
        self._bytes -= entry.size
        return entry

    # --- block building and commit --------------------------------------------------------

    def reap(self, *, max_txs: int, max_bytes: int, height: int | None = None) -> list[Tx]:
        """Up to `max_txs` pending txs totalling at most `max_bytes`, round-robin over
        signers; they become in flight until committed or returned. With `height` (the
        block's), txs expired at that height are evicted instead of chosen."""
        chosen: list[Tx] = []
        total = 0
        blocked: set[bytes] = set()  # signers whose next tx does not fit this block
        while len(chosen) < max_txs:
            served = False
            for signer in [s for s in self._queues if s not in blocked]:
                if len(chosen) >= max_txs:
                    break
                entry = self._head_of(signer, height)
                if entry is None:
                    continue
                if total + entry.size > max_bytes:
                    blocked.add(signer)
                    continue
                self._take_in_flight(entry)
                chosen.append(entry.tx)
                total += entry.size
                served = True
            if not served:
                break
        return chosen

    def _head_of(self, signer: bytes, height: int | None) -> _Entry | None:
        """The signer's oldest pending tx that is still valid at `height` (older expired
        ones are evicted on the way), or None if the signer has none left."""
        while (queue := self._queues.get(signer)) is not None:
            entry = self._entries[next(iter(queue))]
            if height is None or entry.tx.expiry_height >= height:
                return entry
            self._drop(entry.tx_hash)
            self.counters.evicted_expired += 1
        return None

    def _take_in_flight(self, entry: _Entry) -> None:
        signer = entry.tx.signer
        queue = self._queues[signer]
        del queue[entry.tx_hash]
        if queue:
            self._queues.move_to_end(signer)
        else:
            del self._queues[signer]
        entry.in_flight = True
        self._pending -= 1

    def hold(self, tx_hashes: Iterable[bytes]) -> int:
        """Take pooled txs out of reach of `reap`: they sit in a block another validator
        proposed (a PBFT pre-prepare, a Raft entry) that may still commit. Without this a
        new primary or leader proposes them again and they land twice (the second copy
        executes as a replay). A tx not pooled yet enters in flight when it arrives, since
        the custody's carried record (the pool's `carried`) holds its hash. `return_txs`
        puts them back if that block never commits; `remove_committed` drops them if it
        does. Returns how many pooled txs were taken."""
        held = 0
        for tx_hash in tx_hashes:
            entry = self._entries.get(tx_hash)
            if entry is not None and not entry.in_flight:
                self._take_in_flight(entry)
                held += 1
        return held

    def return_txs(self, tx_hashes: Iterable[bytes]) -> int:
        """Put in-flight txs back (their proposal was abandoned), in arrival order. Txs
        already committed or expired are simply gone; returns how many came back."""
        returned = 0
        touched: set[bytes] = set()
        for tx_hash in tx_hashes:
            entry = self._entries.get(tx_hash)
            if entry is None or not entry.in_flight:
                continue
            if entry.tx.expiry_height < self.next_height:
                # Expired while in flight: `evict_expired` left it to its block; the block
                # did not take it, so it goes now.
                self._drop(tx_hash)
                self.counters.evicted_expired += 1
                continue
            entry.in_flight = False
            self._pending += 1
            self._queues.setdefault(entry.tx.signer, {})[tx_hash] = None
            touched.add(entry.tx.signer)
            returned += 1
        for signer in touched:
            queue = self._queues[signer]
            ordered = sorted(queue, key=lambda h: self._entries[h].seq)
            self._queues[signer] = dict.fromkeys(ordered)
        return returned

    def remove_committed(self, txs: Iterable[Tx], *, committed_height: int) -> int:
        """Drop the txs of a committed block (by hash and by (signer, nonce)), advance the
        next height and evict txs that expired. Returns how many txs left the pool."""
        removed = 0
        signers = self._per_signer_count
        for tx in txs:
            tx_hash = tx.hash()
            if self._drop(tx_hash) is not None:
                removed += 1  # its (signer, nonce) was its own: no other tx can hold it
            elif tx.signer in signers:  # else no pooled tx can share its (signer, nonce)
                other = self._by_replay.get(tx.replay_key)
                if other is not None and self._drop(other) is not None:
                    removed += 1
        self.next_height = max(self.next_height, committed_height + 1)
        return removed + self.evict_expired()

    def evict_expired(self) -> int:
        """Drop pending txs whose expiry height is below the next height. In-flight txs stay
        (their block decides) but leave the expiry index; `return_txs` evicts them if their
        block gives them back. Cost: the expired txs, not the pool."""
        evicted = 0
        heights = self._expiry_heights
        while heights and heights[0] < self.next_height:
            bucket = self._by_expiry.pop(heapq.heappop(heights), None)
            for tx_hash in bucket or ():
                if not self._entries[tx_hash].in_flight:
                    self._drop(tx_hash)
                    evicted += 1
        if len(heights) > 2 * len(self._by_expiry) + 64:
            self._rebuild_expiry_heights()
        self.counters.evicted_expired += evicted
        return evicted

    def _rebuild_expiry_heights(self) -> None:
        """Forget stale heights: O(distinct expiry heights held), not O(pool)."""
        self._expiry_heights = list(self._by_expiry)
        heapq.heapify(self._expiry_heights)

    # --- block validation (delegated: node/verify_pool.py) -------------------------------

    def ensure_verified(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> int | None:
        """Index of the first tx whose signature fails, or None (SignatureVerifier)."""
        return self.signatures.ensure_verified(txs, tx_hashes)

    async def ensure_verified_async(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> int | None:
        """As `ensure_verified`, with cache misses verified off the event loop."""
        return await self.signatures.ensure_verified_async(txs, tx_hashes)

    async def verify_and_remember(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> list[bool]:
        """Verify off the event loop and remember the good ones (SignatureVerifier)."""
        return await self.signatures.verify_and_remember(txs, tx_hashes)

    def verify_and_remember_now(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> list[bool]:
        """`verify_and_remember` for a small batch, on this thread (SignatureVerifier)."""
        return self.signatures.verify_and_remember_now(txs, tx_hashes)

    def close(self) -> None:
        self.signatures.close()

    def check_invariants(self) -> None:
        """The indexes agree with the entries (cheap enough for tests, O(pool))."""
        assert len(self._by_replay) == len(self._entries)
        assert sum(entry.size for entry in self._entries.values()) == self._bytes
        assert sum(self._per_signer_count.values()) == len(self._entries)
        queued = {h for queue in self._queues.values() for h in queue}
        pending = {h for h, entry in self._entries.items() if not entry.in_flight}
        assert queued == pending, "pending queues disagree with entries"
        assert self._pending == len(pending)
        assert all(queue for queue in self._queues.values()), "empty signer queue kept"
        for tx_hash, entry in self._entries.items():
            assert self._by_replay[entry.tx.replay_key] == tx_hash
            if not entry.in_flight:
                assert tx_hash in self._by_expiry[entry.tx.expiry_height], "pending unindexed"
        live_heights = set(self._expiry_heights)
        for height, bucket in self._by_expiry.items():
            assert bucket, "empty expiry bucket kept"
            assert height in live_heights, "expiry bucket missing from the heap"
            for tx_hash in bucket:
                assert self._entries[tx_hash].tx.expiry_height == height
        assert len(self._entries) <= self.limits.max_txs
        assert self._bytes <= self.limits.max_bytes
