"""The standby store (node/standby.py): bounds, eviction order, hold/release/remove, and
promotion into a real Mempool through its normal admission."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

from node.mempool import Mempool, MempoolLimits
from node.standby import StandbyStore, promote
from protocol.crypto import SigningKey
from protocol.tx import decode_tx, sign_tx

CHAIN = "seoul-test"
_nonces = itertools.count(1)
KEY = SigningKey.from_secret(b"standby-agency")


def raw_tx(*, body: bytes = b"x" * 100, key: SigningKey = KEY) -> bytes:
    tx = sign_tx(
        key,
        chain_id=CHAIN,
        nonce=next(_nonces),
        expiry_height=100,
        kind="notary.anchor",
        body=body,
    )
    return tx.encode()


def digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def filled(store: StandbyStore, count: int) -> list[bytes]:
    raws = [raw_tx() for _ in range(count)]
    for raw in raws:
        assert store.add(digest(raw), raw)
    return raws


def test_count_bound_evicts_oldest_first_and_reports_each_eviction() -> None:
    evicted: list[bytes] = []
    store = StandbyStore(txs_max=3, bytes_max=1 << 20, on_evict=evicted.append)
    raws = filled(store, 5)
    assert len(store) == 3
    assert evicted == [digest(raws[0]), digest(raws[1])]
    assert store.counters.evicted == 2
    assert [digest(r) in store for r in raws] == [False, False, True, True, True]
    store.check_invariants()


def test_byte_bound_evicts_oldest_until_the_new_tx_fits() -> None:
    raws = [raw_tx() for _ in range(4)]
    size = len(raws[0])
    assert all(len(raw) == size for raw in raws)
    store = StandbyStore(txs_max=100, bytes_max=2 * size + size // 2)
    for raw in raws:
        store.add(digest(raw), raw)
    assert len(store) == 2
    assert store.size_bytes() == 2 * size
    assert digest(raws[2]) in store
    assert digest(raws[3]) in store
    store.check_invariants()


def test_a_tx_larger_than_the_byte_bound_is_refused_without_evicting() -> None:
    store = StandbyStore(txs_max=10, bytes_max=400)
    small = filled(store, 1)
    big = raw_tx(body=b"y" * 600)
    assert not store.add(digest(big), big)
    assert store.counters.too_large == 1
    assert digest(small[0]) in store
    assert store.counters.evicted == 0


def test_duplicates_are_kept_once() -> None:
    store = StandbyStore(txs_max=10, bytes_max=1 << 20)
    raw = raw_tx()
    assert store.add(digest(raw), raw)
    assert not store.add(digest(raw), raw)
    assert len(store) == 1
    assert store.size_bytes() == len(raw)


def test_remove_on_commit_drops_entries_and_bytes() -> None:
    store = StandbyStore(txs_max=10, bytes_max=1 << 20)
    raws = filled(store, 3)
    assert store.remove([digest(raws[0]), digest(raws[2]), b"\x00" * 32]) == 2
    assert len(store) == 1
    assert store.size_bytes() == len(raws[1])
    store.check_invariants()


def test_held_entries_are_not_taken_until_released() -> None:
    store = StandbyStore(txs_max=10, bytes_max=1 << 20)
    raws = filled(store, 3)
    assert store.hold([digest(raws[0])]) == 1
    taken = store.take_oldest(10, skip=lambda _h: False)
    assert [raw for _, raw in taken] == raws[1:]
    assert len(store) == 1, "the held entry stays"
    assert store.release([digest(raws[0])]) == 1
    assert [raw for _, raw in store.take_oldest(10, skip=lambda _h: False)] == raws[:1]
    assert len(store) == 0
    assert store.size_bytes() == 0
    assert store.counters.promoted == 3


def test_a_tx_whose_hash_is_carried_arrives_held() -> None:
    carried: set[bytes] = set()  # the custody's record (node/carried.py)
    store = StandbyStore(txs_max=10, bytes_max=1 << 20, carried=carried)
    late, other = raw_tx(body=b"late"), raw_tx(body=b"other")
    carried.add(digest(late))  # its carrier block came before it
    store.add(digest(late), late)
    store.add(digest(other), other)
    assert [raw for _, raw in store.take_oldest(10, skip=lambda _h: False)] == [other]
    assert store.release([digest(late)]) == 1
    assert [raw for _, raw in store.take_oldest(10, skip=lambda _h: False)] == [late]
    carried.clear()  # its height was decided
    store.add(digest(late), late)
    assert [raw for _, raw in store.take_oldest(10, skip=lambda _h: False)] == [late]


def test_take_oldest_drops_skipped_entries_and_respects_the_limit() -> None:
    store = StandbyStore(txs_max=10, bytes_max=1 << 20)
    raws = filled(store, 5)
    skipped = {digest(raws[0]), digest(raws[2])}
    taken = store.take_oldest(2, skip=skipped.__contains__)
    assert [raw for _, raw in taken] == [raws[1], raws[3]]
    assert len(store) == 1, "the skipped ones are gone, the last one waits"
    assert digest(raws[4]) in store
    store.check_invariants()


async def test_promote_admits_in_full_oldest_first_and_skips_pooled_txs() -> None:
    mempool = Mempool(chain_id=CHAIN, next_height=1)
    store = StandbyStore(txs_max=100, bytes_max=1 << 20)
    raws = filled(store, 7)
    assert mempool.add(raws[1]).added  # already pooled: dropped, not admitted twice
    bad = dataclasses.replace(decode_tx(raw_tx()), signature=bytes(64)).encode()
    store.add(digest(bad), bad)
    added = await promote(
        store,
        admit=mempool.add_batch,
        in_pool=mempool.__contains__,
        keep_going=lambda: True,
        on_refused=lambda _h: None,
        batch_txs=3,
    )
    assert added == 6
    assert len(store) == 0
    assert len(mempool) == 7
    assert mempool.rejected_counts() == {"bad_signature": 1}, "full admission ran"
    pending = [tx.encode() for tx in mempool.pending_txs(10)]
    assert pending == [raws[1], raws[0], *raws[2:]], "arrival order kept"
    mempool.check_invariants()
    mempool.close()


async def test_promote_stops_when_leadership_ends_and_reports_passing_refusals() -> None:
    mempool = Mempool(chain_id=CHAIN, next_height=1, pool_limits=MempoolLimits(max_txs=2))
    store = StandbyStore(txs_max=100, bytes_max=1 << 20)
    raws = filled(store, 4)
    refused: list[bytes] = []
    added = await promote(
        store,
        admit=mempool.add_batch,
        in_pool=mempool.__contains__,
        keep_going=lambda: True,
        on_refused=refused.append,
        batch_txs=10,
    )
    assert added == 2
    assert refused == [digest(raws[2]), digest(raws[3])], "full: gossip must forget them"
    later = filled(store, 2)
    assert (
        await promote(
            store,
            admit=mempool.add_batch,
            in_pool=mempool.__contains__,
            keep_going=lambda: False,
            on_refused=refused.append,
            batch_txs=10,
        )
        == 0
    )
    assert all(digest(raw) in store for raw in later), "a non-leader promotes nothing"
    mempool.close()


async def test_promote_with_a_total_cap_takes_only_the_oldest_few() -> None:
    """An idle backup admits a few standby txs, not its whole store (admit_waiting): under
    overload, verifying everything would slow the cluster it is waiting for."""
    mempool = Mempool(chain_id=CHAIN, next_height=1)
    store = StandbyStore(txs_max=100, bytes_max=1 << 20)
    raws = filled(store, 9)
    added = await promote(
        store,
        admit=mempool.add_batch,
        in_pool=mempool.__contains__,
        keep_going=lambda: True,
        on_refused=lambda _h: None,
        batch_txs=2,
        total_max=5,
    )
    assert added == 5
    assert [tx.encode() for tx in mempool.pending_txs(10)] == raws[:5], "oldest first"
    assert all(digest(raw) in store for raw in raws[5:]), "the rest keep waiting"
    mempool.close()
