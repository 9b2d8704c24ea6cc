"""The lean admission path: static checks and hashing once per tx, pool checks again after
the signature await (only those can change), the hash carried on the Tx for everyone after
the pool; and per-commit maintenance that touches the committed and expired txs only."""

from __future__ import annotations

import asyncio
import itertools

import pytest

import node.mempool as mempool_module
import protocol.tx as tx_module
from node import limits
from node.mempool import Mempool, MempoolLimits
from protocol.crypto import SigningKey, sha256
from protocol.tx import Tx, decode_tx, sign_tx

CHAIN = "seoul-admission"
_nonces = itertools.count(1)


def make_tx(key: SigningKey, *, expiry: int = 100, nonce: int | None = None) -> Tx:
    return sign_tx(
        key,
        chain_id=CHAIN,
        nonce=next(_nonces) if nonce is None else nonce,
        expiry_height=expiry,
        kind="notary.anchor",
        body=b"y" * 80,
    )


def key(name: str) -> SigningKey:
    return SigningKey.from_secret(name.encode())


def pool(**overrides: int) -> Mempool:
    return Mempool(chain_id=CHAIN, next_height=1, pool_limits=MempoolLimits(**overrides))


async def test_each_tx_is_decoded_and_hashed_once_and_the_hash_is_carried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decodes: list[bytes] = []
    hashes: list[bytes] = []
    real_decode, real_sha256 = tx_module.decode_tx, sha256

    def counting_decode(raw: bytes, *, digest: bytes | None = None) -> Tx:
        decodes.append(raw)
        return real_decode(raw, digest=digest)

    def counting_sha256(data: bytes) -> bytes:
        hashes.append(data)
        return real_sha256(data)

    monkeypatch.setattr(mempool_module, "decode_tx", counting_decode)
    monkeypatch.setattr(tx_module, "sha256", counting_sha256)
    monkeypatch.setattr(mempool_module, "sha256", counting_sha256)
    mempool = pool()
    raws = [make_tx(key(f"s{i % 3}")).encode() for i in range(limits.verify_inline_txs_max + 8)]
    admissions = await mempool.add_batch(raws)
    assert all(admission.added for admission in admissions)
    assert decodes == raws, "one decode per submitted tx"
    assert sorted(hashes) == sorted(raws), "one SHA-256 per tx, of its own bytes"
    for raw, admission in zip(raws, admissions, strict=True):
        assert admission.result.tx_hash == real_sha256(raw)
        # The block's copy of the tx (same bytes) gets the same object, hash included.
        assert decode_tx(raw).hash() is admission.result.tx_hash
    assert len(hashes) == len(raws), "the block path hashed nothing again"
    mempool.check_invariants()


async def test_digests_given_with_a_batch_are_the_hashes_and_nothing_is_hashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gossip hands the leader's pool the digests it computed: admission memoises them on
    the decoded txs and hashes nothing, refusals included."""
    hashes: list[bytes] = []
    real_sha256 = sha256

    def counting_sha256(data: bytes) -> bytes:
        hashes.append(data)
        return real_sha256(data)

    monkeypatch.setattr(tx_module, "sha256", counting_sha256)
    monkeypatch.setattr(mempool_module, "sha256", counting_sha256)
    mempool = pool(max_tx_bytes=2_000)
    raws = [make_tx(key(f"d{i % 3}")).encode() for i in range(5)] + [b"garbage", bytes(3_000)]
    digests = [real_sha256(raw) for raw in raws]
    admissions = await mempool.add_batch(raws, digests)
    assert [admission.reason for admission in admissions] == [""] * 5 + ["decode", "too_large"]
    for digest, admission in zip(digests, admissions, strict=True):
        assert admission.result.tx_hash is digest
    assert hashes == [], "no SHA-256 on the way"
    mempool.check_invariants()


async def test_pool_checks_run_again_after_the_signature_await() -> None:
    """A tx admitted while a batch awaits its verify makes the batch's copy a duplicate,
    and a next height that moves past a tx's expiry meanwhile makes it expired."""
    mempool = pool()
    signer = key("racer")
    batch = [make_tx(signer).encode() for _ in range(limits.verify_inline_txs_max + 1)]
    short = make_tx(key("short"), expiry=1)
    task = asyncio.create_task(mempool.add_batch([*batch, short.encode()]))
    await asyncio.sleep(0)  # the batch is now awaiting its signature checks
    assert mempool.add(batch[0]).added
    mempool.next_height = 2
    admissions = await task
    assert [a.reason for a in admissions[:2]] == ["duplicate", ""]
    assert admissions[-1].reason == "expired"
    assert len(mempool) == len(batch)
    mempool.check_invariants()


def test_refusals_before_the_pool_name_the_hash_of_the_bytes_sent() -> None:
    mempool = pool(max_tx_bytes=260)
    big = sign_tx(
        key("a"), chain_id=CHAIN, nonce=1, expiry_height=9, kind="notary.anchor", body=bytes(300)
    ).encode()
    broken = make_tx(key("a")).encode()[:-1]
    other_chain = sign_tx(
        key("a"), chain_id="elsewhere", nonce=2, expiry_height=9, kind="x", body=b""
    ).encode()
    for raw, reason in ((big, "too_large"), (broken, "decode"), (other_chain, "wrong_chain")):
        admission = mempool.add(raw)
        assert admission.reason == reason
        assert admission.result.tx_hash == sha256(raw)


def test_commit_maintenance_touches_only_committed_and_expired_txs() -> None:
    mempool = pool(max_txs_per_signer=10_000)
    signers = [key(f"k{i}") for i in range(4)]
    expiries = [5, 6, 7, 1_000]
    for index in range(400):
        mempool.add(make_tx(signers[index % 4], expiry=expiries[index % 4]).encode())
    heights_before = len(mempool._expiry_heights)
    assert sorted(mempool._by_expiry) == sorted(expiries)
    for height in range(1, 9):
        block = mempool.reap(max_txs=10, max_bytes=10**6, height=height)
        assert block
        mempool.remove_committed(block, committed_height=height)
        mempool.check_invariants()
    assert len(mempool) > 0
    assert all(tx.expiry_height == 1_000 for tx in mempool.pending_txs(1_000))
    assert sorted(mempool._by_expiry) == [1_000]
    assert len(mempool._expiry_heights) <= heights_before, "no stale heights pile up"


def test_stale_expiry_heights_are_bounded_under_churn() -> None:
    """Txs with ever new expiry heights that leave by commit (not by expiry) leave heights
    behind in the heap; the heap is rebuilt before it outgrows the live buckets."""
    mempool = pool()
    signer = key("churn")
    for round_index in range(300):
        tx = make_tx(signer, expiry=10_000 + round_index)
        assert mempool.add(tx.encode()).added
        assert mempool.reap(max_txs=1, max_bytes=10**6) == [tx]
        mempool.remove_committed([tx], committed_height=round_index + 1)
        assert len(mempool._expiry_heights) <= 2 * len(mempool._by_expiry) + 64 + 1
    assert len(mempool) == 0
    mempool.check_invariants()


def test_in_flight_expired_tx_is_evicted_when_returned_and_counted_once() -> None:
    mempool = pool()
    tx = make_tx(key("late"), expiry=2)
    mempool.add(tx.encode())
    assert mempool.reap(max_txs=1, max_bytes=10**6) == [tx]
    assert mempool.remove_committed([], committed_height=5) == 0
    assert tx.hash() in mempool, "its block decides while it is in flight"
    assert mempool._by_expiry == {}
    mempool.check_invariants()
    assert mempool.return_txs([tx.hash()]) == 0
    assert tx.hash() not in mempool
    assert mempool.counters.evicted_expired == 1
    assert mempool.return_txs([tx.hash()]) == 0
    assert mempool.counters.evicted_expired == 1
    mempool.check_invariants()


def test_in_flight_tx_committed_after_its_bucket_expired_leaves_cleanly() -> None:
    mempool = pool()
    tx = make_tx(key("slow-block"), expiry=3)
    mempool.add(tx.encode())
    mempool.reap(max_txs=1, max_bytes=10**6)
    mempool.remove_committed([], committed_height=4)
    assert mempool.remove_committed([tx], committed_height=5) == 1
    assert len(mempool) == 0
    mempool.check_invariants()


def test_pending_txs_are_the_oldest_in_arrival_order() -> None:
    mempool = pool()
    txs = [make_tx(key(f"o{i % 2}")) for i in range(6)]
    for tx in txs:
        mempool.add(tx.encode())
    mempool.reap(max_txs=2, max_bytes=10**6)  # in-flight txs are still listed
    assert mempool.pending_txs(4) == txs[:4]
    assert mempool.pending_txs(0) == []
