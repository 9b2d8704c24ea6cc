"""The standby verifier with the real Mempool (its verify threads and verified cache) and
the real StandbyStore: gossiped txs a backup keeps are verified in the background, so the
block path (`Mempool.ensure_verified_async`) verifies nothing again; forgeries are counted
and dropped; the queue bound skips (and counts) the overflow, which the block path then
verifies; shutdown cancels a chunk in flight cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator

import pytest

from node.mempool import Mempool
from node.standby import StandbyStore
from node.standby_verify import StandbyVerifier
from protocol import tx as tx_module
from protocol.crypto import SigningKey, sha256
from protocol.tx import Tx, decode_tx, sign_tx

CHAIN = "seoul-verify-test"
KEY = SigningKey.from_secret(b"standby-verify-agency")
_nonces = iter(range(1, 1_000_000))


def signed(count: int) -> list[Tx]:
    return [
        sign_tx(
            KEY,
            chain_id=CHAIN,
            nonce=next(_nonces),
            expiry_height=1_000,
            kind="notary.anchor",
            body=b"b" * 64,
        )
        for _ in range(count)
    ]


def forge(tx: Tx) -> Tx:
    return dataclasses.replace(tx, signature=bytes(64))


@dataclasses.dataclass
class Rig:
    mempool: Mempool
    store: StandbyStore
    verifier: StandbyVerifier
    evicted: list[bytes]

    def gossip(self, raws: list[bytes]) -> int:
        """What NodeNetwork does at a backup: keep in standby, queue the newly kept."""
        kept = [(hashlib.sha256(raw).digest(), raw) for raw in raws]
        kept = [(digest, raw) for digest, raw in kept if self.store.add(digest, raw)]
        return self.verifier.enqueue(kept)


def make_rig(*, queue_txs_max: int = 1_000, chunk_txs: int = 64) -> Rig:
    evicted: list[bytes] = []
    mempool = Mempool(chain_id=CHAIN, next_height=1)
    store = StandbyStore(txs_max=10_000, bytes_max=10_000_000, on_evict=evicted.append)
    verifier = StandbyVerifier(
        store, mempool=mempool, queue_txs_max=queue_txs_max, chunk_txs=chunk_txs
    )
    return Rig(mempool, store, verifier, evicted)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = make_rig()
    try:
        yield made
    finally:
        await made.verifier.stop()
        made.mempool.close()


async def test_good_txs_end_up_verified_and_the_block_path_verifies_nothing(rig: Rig) -> None:
    txs = signed(150)  # several chunks, each large enough for the verify threads
    assert rig.gossip([tx.encode() for tx in txs]) == 150
    await rig.verifier.idle()
    assert rig.mempool.counters.verifications == 150
    assert rig.verifier.counters.verified == 150
    assert all(tx.hash() in rig.mempool.verified for tx in txs)
    assert len(rig.store) == 150, "verified txs stay in standby until their block commits"
    assert await rig.mempool.ensure_verified_async(txs, [tx.hash() for tx in txs]) is None
    assert rig.mempool.counters.verifications == 150, "the block path verified nothing"


async def test_forged_and_undecodable_txs_are_counted_and_dropped(rig: Rig) -> None:
    good = signed(40)
    forged = [forge(tx) for tx in signed(3)]
    garbage = b"\x01not a tx"
    rig.gossip([tx.encode() for tx in [*good[:20], *forged, *good[20:]]] + [garbage])
    await rig.verifier.idle()
    assert rig.verifier.counters.forged == 4
    assert rig.store.counters.forged == 4
    assert len(rig.store) == 40
    assert all(tx.hash() not in rig.store for tx in forged)
    assert all(tx.hash() not in rig.mempool.verified for tx in forged)
    assert rig.evicted == [], "gossip keeps remembering forgeries: copies stay duplicates"
    rig.store.check_invariants()
    block = [*good[:5], forged[0]]
    assert await rig.mempool.ensure_verified_async(block) == 5, "its block is still refused"


async def test_queue_overflow_is_counted_and_left_to_the_block_path() -> None:
    rig = make_rig(queue_txs_max=40, chunk_txs=40)
    try:
        txs = signed(100)
        assert rig.gossip([tx.encode() for tx in txs]) == 40
        assert rig.verifier.counters.skipped_full == 60
        await rig.verifier.idle()
        assert rig.mempool.counters.verifications == 40
        assert len(rig.store) == 100, "skipped txs are still kept in standby"
        assert await rig.mempool.ensure_verified_async(txs) is None
        assert rig.mempool.counters.verifications == 100, "each tx verified exactly once"
    finally:
        await rig.verifier.stop()
        rig.mempool.close()


async def test_txs_committed_or_verified_before_their_turn_are_skipped(rig: Rig) -> None:
    # 60 txs in one batch: more than a small batch, which would be verified at once.
    committed, in_block, waiting = signed(20), signed(20), signed(20)
    rig.gossip([tx.encode() for tx in [*committed, *in_block, *waiting]])
    rig.store.remove(tx.hash() for tx in committed)  # their block committed meanwhile
    assert await rig.mempool.ensure_verified_async(in_block) is None  # a block came first
    await rig.verifier.idle()
    assert rig.verifier.counters.skipped_stale == 40
    assert rig.verifier.counters.verified == 20
    assert rig.mempool.counters.verifications == 40, "nothing verified twice or for nothing"


async def test_a_small_batch_finding_the_verifier_idle_is_verified_at_once(rig: Rig) -> None:
    """A gossip frame of a few txs is verified in `enqueue` itself (on this thread, as the
    task would): no task wakes up; a forgery among them is dropped all the same. With a
    batch queued, the next small one queues behind it, in order."""
    txs = signed(5)
    forged = forge(signed(1)[0])
    assert rig.gossip([tx.encode() for tx in [*txs, forged]]) == 6
    assert rig.verifier._task is None, "no task was needed"
    assert rig.verifier.counters.verified == 5
    assert rig.verifier.counters.forged == 1
    assert forged.hash() not in rig.store
    assert all(tx.hash() in rig.mempool.verified for tx in txs)
    big, small = signed(40), signed(3)
    rig.gossip([tx.encode() for tx in big])  # queued for the task
    rig.gossip([tx.encode() for tx in small])  # behind it: queued too
    assert len(rig.verifier) == 43
    await rig.verifier.idle()
    assert rig.verifier.counters.verified == 48
    assert rig.mempool.counters.verifications == 49, "each tx verified exactly once"


async def test_a_block_waits_for_the_chunk_in_flight_and_claims_the_rest(rig: Rig) -> None:
    """A block arrives while its first chunk is being verified in the background and the
    rest still queued: it waits for the chunk, verifies the rest itself, and the verifier
    skips those (claimed) instead of verifying them a second time."""
    txs = signed(200)  # chunks of 64: one in flight, the rest queued
    rig.gossip([tx.encode() for tx in txs])
    await asyncio.sleep(0)  # the verifier takes the first chunk to its verify threads
    hashes = [tx.hash() for tx in txs]
    await rig.verifier.settle(hashes)
    assert rig.verifier.counters.waits == 1
    assert await rig.mempool.ensure_verified_async(txs, hashes) is None
    await rig.verifier.idle()
    assert rig.mempool.counters.verifications == 200, "each tx verified exactly once"
    assert rig.verifier.counters.verified == 64
    assert rig.verifier.counters.skipped_stale == 136
    await rig.verifier.settle(hashes)  # nothing in flight now: returns at once
    assert rig.verifier.counters.waits == 1


async def test_stop_cancels_a_chunk_in_flight_and_refuses_new_work(rig: Rig) -> None:
    txs = signed(64)
    rig.gossip([tx.encode() for tx in txs[:32]] + [tx.encode() for tx in txs[32:]])
    await asyncio.sleep(0)
    assert rig.verifier._task is not None
    await rig.verifier.stop()
    assert rig.verifier._task.cancelled()
    assert len(rig.verifier) == 0
    assert rig.verifier.enqueue([(b"h" * 32, b"raw")]) == 0
    await asyncio.wait_for(rig.verifier.idle(), timeout=5)
    waiter = asyncio.ensure_future(rig.verifier.settle([tx.hash() for tx in txs]))
    await asyncio.wait_for(waiter, timeout=5)  # a cancelled chunk wakes its waiters


async def test_the_background_verify_hashes_nothing_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gossip's digests are the keys: the verifier memoises them on the txs it decodes, so
    neither it nor the block path after it (same bytes, same Tx) computes a SHA-256."""
    raws = [tx.encode() for tx in signed(10)]
    hashed: list[bytes] = []

    def counting_sha256(data: bytes) -> bytes:
        hashed.append(data)
        return sha256(data)

    monkeypatch.setattr(tx_module, "sha256", counting_sha256)
    assert rig.gossip(raws) == 10  # hashes with hashlib, as gossip does
    await rig.verifier.idle()
    assert rig.verifier.counters.verified == 10
    block_txs = [decode_tx(raw) for raw in raws]
    assert [tx.hash() for tx in block_txs] == [hashlib.sha256(raw).digest() for raw in raws]
    assert hashed == [], "no SHA-256 after gossip's"
