"""Signature checks for the mempool and block validation, each tx verified once per node.

Why a module of its own: the mempool decides *which* txs it holds; this decides *whether a
signature is good*, and does so at most once per tx ever. The hashes of verified txs live in
a bounded LRU (`VerifiedCache`) that admission, block validation (`ensure_verified`) and the
standby verifier (`verify_and_remember`) all consult, so a tx that came through the pool costs
no second verify when its block arrives. Large batches are verified off the event loop in
chunks on a small thread pool (libsodium releases the GIL during each verify); small ones
inline, where a thread hop would cost more than the verifies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from node import limits
from protocol.tx import Tx

log = logging.getLogger(__name__)


class VerifyCounter(Protocol):
    """Where signature checks actually run (cache misses) are counted: the mempool's
    counters, so one number covers admission and block validation alike."""

    verifications: int


class VerifiedCache:
    """Bounded LRU of tx hashes whose signature this node has verified."""

    def __init__(self, capacity: int) -> None:
        assert capacity >= 1
        self._capacity = capacity
        self._hashes: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._hashes

    def touch(self, tx_hash: bytes) -> bool:
        if tx_hash in self._hashes:
            self._hashes.move_to_end(tx_hash)
            return True
        return False

    def missing(self, tx_hashes: Sequence[bytes]) -> list[int]:
        """Indexes of the hashes not in the cache; those in it are touched (most recently
        used). `touch` for a whole block or chunk in one call."""
        hashes = self._hashes
        touch = hashes.move_to_end
        absent: list[int] = []
        for index, tx_hash in enumerate(tx_hashes):
            if tx_hash in hashes:
                touch(tx_hash)
            else:
                absent.append(index)
        return absent

    def add(self, tx_hash: bytes) -> None:
        self._hashes[tx_hash] = None
        self._hashes.move_to_end(tx_hash)
        while len(self._hashes) > self._capacity:
            self._hashes.popitem(last=False)


class SignatureVerifier:
    """The verified cache plus the verify threads. Not thread-safe: every method runs on the
    node's event loop; only the signature checks of a chunk leave it, touching no state."""

    def __init__(self, verified: VerifiedCache, counters: VerifyCounter) -> None:
        self.verified = verified
        self._counters = counters
        self._executor: ThreadPoolExecutor | None = None

    def verify_inline(self, txs: Sequence[Tx]) -> list[bool]:
        """One verdict per tx, in order, verified on this thread: for at most
        `verify_inline_txs_max` txs, where a thread hop costs more than the verifies."""
        assert len(txs) <= limits.verify_inline_txs_max
        self._counters.verifications += len(txs)
        return [tx.verify_signature() for tx in txs]

    async def verify_many(self, txs: list[Tx]) -> list[bool]:
        """One verdict per tx, in order; every tx is verified (no cache lookup here)."""
        if len(txs) <= limits.verify_inline_txs_max:
            return self.verify_inline(txs)
        self._counters.verifications += len(txs)
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=limits.verify_workers_count, thread_name_prefix="verify"
            )
        step = limits.verify_chunk_txs
        chunks = [txs[start : start + step] for start in range(0, len(txs), step)]
        futures = [loop.run_in_executor(self._executor, _verify_chunk, chunk) for chunk in chunks]
        verdicts: list[bool] = []
        for chunk_verdicts in await asyncio.gather(*futures):
            verdicts.extend(chunk_verdicts)
        assert len(verdicts) == len(txs)
        return verdicts

    def ensure_verified(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> int | None:
        """Index of the first tx whose signature fails, or None if all verify. Txs already in
        the verified cache cost nothing; the rest are verified now and remembered. Pass
        `tx_hashes` (e.g. `block.tx_hashes()`) to save re-encoding each tx."""
        hashes = _hashes_of(txs, tx_hashes)
        for index, tx in enumerate(txs):
            if self.verified.touch(hashes[index]):
                continue
            self._counters.verifications += 1
            if not tx.verify_signature():
                return index
            self.verified.add(hashes[index])
        return None

    async def ensure_verified_async(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> int | None:
        """As `ensure_verified`, with cache misses verified off the event loop."""
        hashes = _hashes_of(txs, tx_hashes)
        missing = self.verified.missing(hashes)
        verdicts = await self.verify_many([txs[i] for i in missing])
        for index, good in zip(missing, verdicts, strict=True):
            if not good:
                return index
            self.verified.add(hashes[index])
        return None

    async def verify_and_remember(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> list[bool]:
        """Verify the signatures of `txs` off the event loop and remember the good ones in
        the verified cache, so a later admission or block check of the same tx costs no
        verify (the standby verifier calls this for gossiped txs a backup keeps, with the
        hashes gossip computed). Txs already in the cache are not verified again. True per
        tx whose signature is good."""
        hashes = _hashes_of(txs, tx_hashes)
        missing = self.verified.missing(hashes)
        checked = await self.verify_many([txs[i] for i in missing])
        return self._remembered(hashes, missing, checked)

    def verify_and_remember_now(
        self, txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None = None
    ) -> list[bool]:
        """`verify_and_remember` on this thread, for at most `verify_inline_txs_max` txs:
        no await, so a caller with a small batch needs no task to run it."""
        hashes = _hashes_of(txs, tx_hashes)
        missing = self.verified.missing(hashes)
        return self._remembered(hashes, missing, self.verify_inline([txs[i] for i in missing]))

    def _remembered(
        self, hashes: Sequence[bytes], missing: list[int], checked: list[bool]
    ) -> list[bool]:
        """Verdicts for all of `hashes` (those not `missing` were verified before) after
        adding the newly verified good ones to the cache."""
        verdicts = [True] * len(hashes)
        for index, good in zip(missing, checked, strict=True):
            verdicts[index] = good
            if good:
                self.verified.add(hashes[index])
        return verdicts

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _hashes_of(txs: Sequence[Tx], tx_hashes: Sequence[bytes] | None) -> Sequence[bytes]:
    if tx_hashes is None:
        return [tx.hash() for tx in txs]
    assert len(tx_hashes) == len(txs), "one hash per tx"
    return tx_hashes


def _verify_chunk(txs: list[Tx]) -> list[bool]:
    """Runs in a worker thread; libsodium releases the GIL during each verify."""
    return [tx.verify_signature() for tx in txs]
