"""Mempool: bounds, dedupe, signatures verified once, fairness, in-flight life cycle."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import pytest

from node.mempool import Mempool, MempoolLimits
from node.verify_pool import VerifiedCache
from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx, sign_tx

CHAIN = "seoul-test"
_nonces = itertools.count(1)


def make_tx(
    key: SigningKey,
    *,
    nonce: int | None = None,
    expiry: int = 100,
    chain_id: str = CHAIN,
    body: bytes = b"x" * 100,
) -> Tx:
    return sign_tx(
        key,
        chain_id=chain_id,
        nonce=next(_nonces) if nonce is None else nonce,
        expiry_height=expiry,
        kind="notary.anchor",
        body=body,
    )


def key(name: str) -> SigningKey:
    return SigningKey.from_secret(name.encode())


def pool(**overrides: int) -> Mempool:
    return Mempool(chain_id=CHAIN, next_height=1, pool_limits=MempoolLimits(**overrides))


def test_admits_and_counts_bytes() -> None:
    mempool = pool()
    tx = make_tx(key("a"))
    admission = mempool.add(tx.encode())
    assert admission.added
    assert admission.result.code == 0
    assert admission.result.tx_hash == tx.hash()
    assert len(mempool) == 1
    assert mempool.size_bytes() == len(tx.encode())
    mempool.check_invariants()


@pytest.mark.parametrize(
    ("make_raw", "reason"),
    [
        (lambda: b"\x01garbage", "decode"),
        (lambda: make_tx(key("a"), chain_id="other").encode(), "wrong_chain"),
        (lambda: make_tx(key("a"), expiry=0).encode(), "expired"),
        (
            lambda: dataclasses.replace(make_tx(key("a")), signature=bytes(64)).encode(),
            "bad_signature",
        ),
    ],
)
def test_stateless_rejections_are_counted(make_raw: Callable[[], bytes], reason: str) -> None:
    mempool = pool()
    admission = mempool.add(make_raw())
    assert admission.reason == reason
    assert admission.result.code != 0
    assert admission.result.codespace == "mempool"
    assert not admission.added
    assert mempool.rejected_counts() == {reason: 1}
    assert len(mempool) == 0


def test_too_large_is_refused_before_decoding() -> None:
    tx = make_tx(key("a"), body=b"x" * 1000)
    mempool = pool(max_tx_bytes=500)
    assert mempool.add(tx.encode()).reason == "too_large"
    assert mempool.counters.verifications == 0


def test_duplicate_hash_succeeds_idempotently_but_is_counted() -> None:
    mempool = pool()
    raw = make_tx(key("a")).encode()
    assert mempool.add(raw).added
    again = mempool.add(raw)
    assert again.reason == "duplicate"
    assert again.result.code == 0
    assert not again.added
    assert len(mempool) == 1


def test_duplicate_signer_nonce_is_refused() -> None:
    mempool = pool()
    signer = key("a")
    assert mempool.add(make_tx(signer, nonce=7).encode()).added
    other = mempool.add(make_tx(signer, nonce=7, body=b"different").encode())
    assert other.reason == "duplicate_nonce"
    assert other.result.code != 0
    assert mempool.add(make_tx(key("b"), nonce=7).encode()).added  # another signer: fine


def test_count_bound_gives_full() -> None:
    mempool = pool(max_txs=3, max_txs_per_signer=3)
    signers = [key(f"s{i}") for i in range(4)]
    results = [mempool.add(make_tx(s).encode()) for s in signers]
    assert [r.added for r in results] == [True, True, True, False]
    assert results[3].reason == "full"
    assert "mempool full" in results[3].result.log
    assert mempool.counters.verifications == 3, "a full pool must not spend a verify"
    mempool.check_invariants()


def test_byte_bound_gives_full() -> None:
    raw_size = len(make_tx(key("a")).encode())
    mempool = pool(max_bytes=2 * raw_size + 10, max_tx_bytes=raw_size)
    assert mempool.add(make_tx(key("a")).encode()).added
    assert mempool.add(make_tx(key("b")).encode()).added
    assert mempool.add(make_tx(key("c")).encode()).reason == "full"
    assert mempool.size_bytes() == 2 * raw_size


def test_per_signer_quota() -> None:
    mempool = pool(max_txs_per_signer=2)
    flooder = key("flooder")
    assert mempool.add(make_tx(flooder).encode()).added
    assert mempool.add(make_tx(flooder).encode()).added
    assert mempool.add(make_tx(flooder).encode()).reason == "signer_quota"
    assert mempool.add(make_tx(key("victim")).encode()).added


def test_app_rejection_is_counted_by_code() -> None:
    def admit(tx: Tx, next_height: int) -> TxResult:
        assert next_height == 1
        return TxResult(code=42, log="unknown agency") if tx.body == b"bad" else TxResult(code=0)

    mempool = Mempool(chain_id=CHAIN, next_height=1, admit=admit)
    refused = mempool.add(make_tx(key("a"), body=b"bad").encode())
    assert refused.reason == "app_42"
    assert refused.result.code == 42
    assert refused.result.codespace == "app"
    assert refused.result.log == "unknown agency"
    assert mempool.add(make_tx(key("a")).encode()).added
    assert mempool.rejected_counts() == {"app_42": 1}


def test_signature_verified_once_ever() -> None:
    mempool = pool()
    tx = make_tx(key("a"))
    assert mempool.add(tx.encode()).added
    assert mempool.counters.verifications == 1
    # The block carrying it needs no second verify; nor does the tx after it left the pool.
    assert mempool.ensure_verified([tx]) is None
    mempool.reap(max_txs=10, max_bytes=10**6)
    mempool.remove_committed([tx], committed_height=1)
    assert mempool.ensure_verified([tx]) is None
    assert mempool.counters.verifications == 1


def test_ensure_verified_returns_first_bad_index() -> None:
    mempool = pool()
    good = [make_tx(key("a")), make_tx(key("b"))]
    bad = dataclasses.replace(make_tx(key("c")), signature=good[0].signature)
    assert mempool.ensure_verified([good[0], bad, good[1]]) == 1
    assert mempool.ensure_verified(good) is None
    verifications = mempool.counters.verifications
    assert mempool.ensure_verified(good) is None
    assert mempool.counters.verifications == verifications


def test_verified_cache_is_bounded_lru() -> None:
    mempool = pool(verified_cache_size=2)
    txs = [make_tx(key("a")) for _ in range(3)]
    assert mempool.ensure_verified(txs) is None
    assert len(mempool.verified) == 2
    assert txs[0].hash() not in mempool.verified
    assert txs[2].hash() in mempool.verified


def test_verified_cache_missing_touches_what_it_finds() -> None:
    cache = VerifiedCache(2)
    cache.add(b"a")
    cache.add(b"b")
    assert cache.missing([b"x", b"a", b"y"]) == [0, 2]
    cache.add(b"c")  # evicts the least recently used: b, since missing() touched a
    assert b"a" in cache
    assert b"b" not in cache


def test_reap_is_round_robin_across_signers_in_arrival_order() -> None:
    mempool = pool()
    busy, quiet_a, quiet_b = key("busy"), key("qa"), key("qb")
    busy_txs = [make_tx(busy) for _ in range(6)]
    for tx in busy_txs:
        mempool.add(tx.encode())
    qa, qb = make_tx(quiet_a), make_tx(quiet_b)
    mempool.add(qa.encode())
    mempool.add(qb.encode())
    first = mempool.reap(max_txs=4, max_bytes=10**6)
    assert first == [busy_txs[0], qa, qb, busy_txs[1]]
    second = mempool.reap(max_txs=10, max_bytes=10**6)
    assert second == busy_txs[2:]
    assert mempool.reap(max_txs=10, max_bytes=10**6) == []
    mempool.check_invariants()


def test_reap_rotates_start_between_reaps() -> None:
    mempool = pool()
    signers = [key(f"s{i}") for i in range(3)]
    for _ in range(3):
        for signer in signers:
            mempool.add(make_tx(signer).encode())
    served = [mempool.reap(max_txs=1, max_bytes=10**6)[0].signer for _ in range(6)]
    assert served == [s.public_key for s in signers] * 2


def test_reap_respects_byte_limit_and_skips_only_the_signer_that_does_not_fit() -> None:
    mempool = pool()
    big = make_tx(key("big"), body=b"x" * 2000)
    small = [make_tx(key("small")) for _ in range(3)]
    mempool.add(big.encode())
    for tx in small:
        mempool.add(tx.encode())
    chosen = mempool.reap(max_txs=10, max_bytes=3 * len(small[0].encode()))
    assert chosen == small
    assert mempool.reap(max_txs=10, max_bytes=10**6) == [big]


def test_in_flight_not_reaped_again_and_returned_in_order() -> None:
    mempool = pool()
    signer = key("a")
    txs = [make_tx(signer) for _ in range(4)]
    for tx in txs:
        mempool.add(tx.encode())
    first = mempool.reap(max_txs=2, max_bytes=10**6)
    assert first == txs[:2]
    assert len(mempool) == 4, "in-flight txs still count against the bounds"
    assert mempool.pending_count() == 2
    # Still a duplicate while in flight.
    assert mempool.add(txs[0].encode()).reason == "duplicate"
    assert mempool.return_txs([tx.hash() for tx in first]) == 2
    mempool.check_invariants()
    assert mempool.reap(max_txs=10, max_bytes=10**6) == txs


def test_commit_removes_by_hash_and_by_signer_nonce() -> None:
    mempool = pool()
    signer = key("a")
    ours = make_tx(signer, nonce=5)
    theirs = make_tx(signer, nonce=5, body=b"other bytes, same nonce")
    mempool.add(ours.encode())
    bystander = make_tx(key("b"))
    mempool.add(bystander.encode())
    # A block built elsewhere committed `theirs`: `ours` can never execute now.
    assert mempool.remove_committed([theirs], committed_height=1) == 1
    assert ours.hash() not in mempool
    assert bystander.hash() in mempool
    assert mempool.next_height == 2
    mempool.check_invariants()


def test_expired_txs_are_evicted_after_commit_but_in_flight_ones_wait() -> None:
    mempool = pool()
    short = make_tx(key("a"), expiry=3)
    short_in_flight = make_tx(key("b"), expiry=3)
    long = make_tx(key("c"), expiry=50)
    mempool.add(short_in_flight.encode())
    assert mempool.reap(max_txs=1, max_bytes=10**6) == [short_in_flight]
    mempool.add(short.encode())
    mempool.add(long.encode())
    assert mempool.remove_committed([], committed_height=3) == 1
    assert short.hash() not in mempool
    assert short_in_flight.hash() in mempool
    # Given back after its expiry: evicted on the spot, not returned to the queues.
    assert mempool.return_txs([short_in_flight.hash()]) == 0
    assert short_in_flight.hash() not in mempool
    mempool.check_invariants()
    assert mempool.remove_committed([], committed_height=4) == 0
    assert list(mempool.pending_txs(10)) == [long]
    assert mempool.counters.evicted_expired == 2
    mempool.check_invariants()


async def test_add_batch_matches_add_and_verifies_off_loop() -> None:
    mempool = pool(max_txs_per_signer=1_000)
    signers = [key(f"s{i}") for i in range(5)]
    txs = [make_tx(signers[i % 5]) for i in range(300)]
    bad = dataclasses.replace(make_tx(signers[0]), signature=txs[0].signature)
    raws = [tx.encode() for tx in txs] + [bad.encode(), txs[5].encode(), b"junk"]
    try:
        results = await mempool.add_batch(raws)
    finally:
        mempool.close()
    assert len(results) == len(raws)
    assert all(r.added for r in results[:300])
    assert [r.reason for r in results[300:]] == ["bad_signature", "duplicate", "decode"]
    assert mempool.counters.verifications == 301
    assert len(mempool) == 300
    mempool.check_invariants()


def test_a_small_batch_is_admitted_without_an_event_loop_like_a_large_one() -> None:
    """add_small_batch (what gossip uses for a frame of a few txs) needs no loop, and gives
    what add_batch gives: earlier txs of the batch win duplicate and nonce checks."""
    mempool = pool()
    signer = key("small")
    first, again = make_tx(signer, nonce=1), make_tx(signer, nonce=2)
    same_nonce = make_tx(signer, nonce=1, body=b"other")
    bad = dataclasses.replace(make_tx(signer, nonce=3), signature=first.signature)
    raws = [first.encode(), first.encode(), same_nonce.encode(), bad.encode(), again.encode()]
    results = mempool.add_small_batch(raws)
    assert [r.reason for r in results] == [
        "", "duplicate", "duplicate_nonce", "bad_signature", ""
    ]  # fmt: skip
    # The repeat costs no verify, nor does the second nonce-1 tx: the batch's earlier
    # candidates count as pooled when the batch is screened, before any verify.
    assert mempool.counters.verifications == 3
    mempool.check_invariants()


@pytest.mark.parametrize("batch_txs", [8, 300])  # inline verify, and the verify threads
async def test_a_batch_spends_no_verify_on_txs_its_own_earlier_txs_crowd_out(
    batch_txs: int,
) -> None:
    """Under overload a gossip batch from one signer can exceed what is left of its quota
    (or of the pool): the txs the earlier ones of the same batch crowd out are refused
    before their signature check, not after it."""
    quota = batch_txs // 2
    mempool = pool(max_txs_per_signer=quota, max_txs=10_000)
    flooder = key("flooder")
    mempool.add(make_tx(flooder).encode())  # one slot of the quota already used
    raws = [make_tx(flooder).encode() for _ in range(batch_txs)]
    try:
        results = await mempool.add_batch(raws)
    finally:
        mempool.close()
    assert [r.reason for r in results] == [""] * (quota - 1) + ["signer_quota"] * (
        batch_txs - quota + 1
    )
    assert mempool.counters.verifications == 1 + quota - 1, "no verify for crowded-out txs"
    mempool.check_invariants()

    full = pool(max_txs=3)
    raws = [make_tx(key(f"s{i}")).encode() for i in range(5)]
    assert [r.reason for r in full.add_small_batch(raws)] == ["", "", "", "full", "full"]
    assert full.counters.verifications == 3


async def test_add_batch_reuses_verified_cache_and_dedupes_within_batch() -> None:
    mempool = pool()
    tx = make_tx(key("a"))
    assert mempool.ensure_verified([tx]) is None
    results = await mempool.add_batch([tx.encode(), tx.encode()])
    assert [r.reason for r in results] == ["", "duplicate"]
    assert mempool.counters.verifications == 1


async def test_ensure_verified_async() -> None:
    mempool = pool()
    txs = [make_tx(key("a")) for _ in range(100)]
    bad = dataclasses.replace(txs[70], signature=txs[0].signature)
    try:
        assert await mempool.ensure_verified_async(txs) is None
        assert await mempool.ensure_verified_async([*txs[:10], bad]) == 10
    finally:
        mempool.close()
    assert mempool.counters.verifications == 101


def test_on_reject_callback_sees_reasons() -> None:
    seen: list[str] = []
    mempool = Mempool(chain_id=CHAIN, next_height=1, on_reject=seen.append)
    mempool.add(b"")
    mempool.add(make_tx(key("a"), chain_id="elsewhere").encode())
    assert seen == ["decode", "wrong_chain"]


def test_reap_at_height_evicts_expired_instead_of_choosing_them() -> None:
    mempool = pool()
    signer = key("a")
    stale = make_tx(signer, expiry=5)
    fresh = make_tx(signer, expiry=50)
    other = make_tx(key("b"), expiry=5)
    for tx in (stale, fresh, other):
        mempool.add(tx.encode())
    assert mempool.pending_count() == 3
    assert mempool.reap(max_txs=10, max_bytes=10**6, height=6) == [fresh]
    assert len(mempool) == 1
    assert mempool.counters.evicted_expired == 2
    assert mempool.pending_count() == 0
    mempool.check_invariants()


def test_ensure_verified_with_block_hashes_and_pending_txs_order() -> None:
    mempool = pool()
    txs = [make_tx(key("a")), make_tx(key("b"))]
    assert mempool.ensure_verified(txs, [tx.hash() for tx in txs]) is None
    assert all(tx.hash() in mempool.verified for tx in txs)
    for tx in reversed(txs):
        mempool.add(tx.encode())
    assert mempool.pending_txs(1) == [txs[1]]
    assert mempool.pending_txs(5) == [txs[1], txs[0]]
    assert mempool.counters.verifications == 2
