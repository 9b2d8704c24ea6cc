"""The caches added for throughput answer exactly what the uncached code would: decoded txs
by their bytes, block hashes and checks, committed state values, and stale pending txs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node.executor import BlockStateView, StoreStateView
from node.mempool import Mempool
from protocol.block import Block, make_block
from protocol.crypto import SigningKey
from protocol.encoding import DecodeError
from protocol.tx import decode_tx, sign_tx
from storage.interface import BlockCommit
from storage.leveldb import LevelDbChainStore
from storage.memory import MemoryChainStore

CHAIN = "seoul-perf"
KEY = SigningKey.from_secret(b"perf-caches")


def signed(nonce: int) -> bytes:
    return sign_tx(
        KEY, chain_id=CHAIN, nonce=nonce, expiry_height=100, kind="notary.anchor", body=b"x"
    ).encode()


def test_decode_tx_returns_the_same_object_for_the_same_bytes() -> None:
    raw = signed(1)
    first = decode_tx(raw)
    assert decode_tx(bytes(bytearray(raw))) is first
    assert decode_tx(bytearray(raw)) is first  # type: ignore[arg-type]
    assert decode_tx(raw).encode() == raw


def test_large_txs_decode_without_being_remembered() -> None:
    raw = sign_tx(
        KEY, chain_id=CHAIN, nonce=3, expiry_height=100, kind="notary.anchor", body=bytes(2000)
    ).encode()
    assert decode_tx(raw) == decode_tx(raw)
    assert decode_tx(raw) is not decode_tx(raw), "too large for the cache"


def test_decode_tx_failures_are_not_remembered() -> None:
    broken = signed(2)[:-1]
    for _ in range(2):
        with pytest.raises(DecodeError):
            decode_tx(broken)
    with pytest.raises(DecodeError):
        decode_tx("not bytes")  # type: ignore[arg-type]


def block_of(nonces: range) -> Block:
    return make_block(
        chain_id=CHAIN,
        height=1,
        prev_hash=bytes(32),
        time_ms=1,
        proposer=KEY.public_key,
        txs=tuple(decode_tx(signed(n)) for n in nonces),
        validators_hash=bytes(32),
        exec_height=0,
        exec_app_hash=bytes(32),
        exec_results_root=bytes(32),
    )


def test_block_memo_keeps_a_bad_block_bad() -> None:
    good = block_of(range(10, 13))
    assert good.invalid() is None
    assert good.hash() == good.header.hash()
    bad_header = dataclasses.replace(good.header, txs_root=bytes(32))
    bad = Block(header=bad_header, txs=good.txs, tx_bytes=good.tx_bytes)
    for _ in range(2):
        assert bad.invalid() == "txs root does not match the body"
    assert bad.tx_hashes() == good.tx_hashes()


def commit_writing(store: MemoryChainStore, key: bytes, value: bytes) -> None:
    height = store.committed_height() + 1
    store.commit_block(
        BlockCommit(
            height=height,
            block_hash=bytes([height]) * 32,
            block=b"block",
            seal=b"seal",
            tx_hashes=[],
            results=b"",
            results_root=bytes(32),
            app_hash=bytes([height]) * 32,
            state_writes={key: value},
        )
    )


def test_state_view_caches_values_until_their_key_is_written() -> None:
    store = MemoryChainStore()
    store.set_genesis(genesis_hash=bytes(32), app_hash=bytes(32), state_writes={b"a/k": b"v1"})
    view = StoreStateView(store)
    assert view.get(b"a/k") == b"v1"
    commit_writing(store, b"a/k", b"v2")
    assert view.get(b"a/k") == b"v1", "still cached: the executor has not said it changed"
    view.forget([b"a/k"])
    assert view.get(b"a/k") == b"v2"
    assert view.get(b"a/missing") is None
    commit_writing(store, b"a/missing", b"now")
    assert view.get(b"a/missing") is None, "a miss is cached like a value"
    view.forget([b"a/missing"])
    assert view.get(b"a/missing") == b"now"
    commit_writing(store, b"a/empty", b"")
    assert view.get(b"a/empty") == b"", "an empty value is a value"


def test_block_state_view_keeps_values_but_not_absent_keys() -> None:
    """Execution's misses on absent keys (keys the block is about to write) are not kept;
    what it reads is still what the store holds, and check_tx's view is unchanged."""
    store = MemoryChainStore()
    store.set_genesis(genesis_hash=bytes(32), app_hash=bytes(32), state_writes={b"a/k": b"v"})
    view = StoreStateView(store)
    block = BlockStateView(view)
    assert block.get(b"a/missing") is None
    assert b"a/missing" not in view._values
    assert block.get(b"a/k") == b"v"
    assert view._values[b"a/k"] == b"v", "a present value is kept for later reads"
    assert view.get(b"a/missing") is None
    assert view._values[b"a/missing"] is None, "check_tx still keeps its misses"
    commit_writing(store, b"a/missing", b"now")
    assert block.get(b"a/missing") is None, "a cached miss answers until forgotten"
    view.forget([b"a/missing"])
    assert block.get(b"a/missing") == b"now"
    assert list(block.scan(b"a/", limit=10)) == [(b"a/k", b"v"), (b"a/missing", b"now")]


def test_state_view_does_not_keep_what_the_store_knows_absent(tmp_path: Path) -> None:
    """Over LevelDB, a key its filter never saw is answered without a read and not cached;
    a present value is cached as before."""
    store = LevelDbChainStore(tmp_path / "db")
    store.set_genesis(genesis_hash=bytes(32), app_hash=bytes(32), state_writes={b"a/k": b"v"})
    view = StoreStateView(store)
    assert view.get(b"a/missing") is None
    assert b"a/missing" not in view._values
    assert view.get(b"a/k") == b"v"
    assert view._values[b"a/k"] == b"v"
    store.close()


def test_state_view_cache_is_bounded() -> None:
    store = MemoryChainStore()
    writes: dict[bytes, bytes | None] = {b"a/%d" % i: b"%d" % i for i in range(10)}
    store.set_genesis(genesis_hash=bytes(32), app_hash=bytes(32), state_writes=writes)
    view = StoreStateView(store, cached_max=3)
    for key, value in writes.items():
        assert view.get(key) == value
    assert len(view._values) == 3
    by_bytes = StoreStateView(store, cached_bytes_max=64 * 8)  # ~8 bytes per entry here
    for key, value in writes.items():
        assert by_bytes.get(key) == value
    assert by_bytes._bytes <= 64 * 8
    by_bytes.forget(list(writes))
    assert by_bytes._bytes == 0
    assert not by_bytes._values


def test_pending_raws_before_lists_only_old_pending_txs() -> None:
    mempool = Mempool(chain_id=CHAIN, next_height=1)
    old = [signed(n) for n in range(20, 23)]
    for raw in old:
        assert mempool.add(raw).added
    mark = mempool.arrival_mark()
    assert mempool.add(signed(30)).added
    assert mempool.pending_raws_before(mark, 10) == old
    assert mempool.pending_raws_before(mark, 2) == old[:2]
    taken = mempool.reap(max_txs=1, max_bytes=10_000)
    assert [tx.encode() for tx in taken] == old[:1]
    assert mempool.pending_raws_before(mark, 10) == old[1:], "in-flight txs are not re-offered"
    mempool.check_invariants()


def test_state_view_with_no_room_caches_nothing() -> None:
    store = MemoryChainStore()
    store.set_genesis(genesis_hash=bytes(32), app_hash=bytes(32), state_writes={b"a/k": b"v"})
    view = StoreStateView(store, cached_max=0)
    assert view.get(b"a/k") == b"v"
    assert view.get(b"a/none") is None
    assert not view._values
    assert view._bytes == 0


class _ForgettingStore(MemoryChainStore):
    """A store whose read races with a commit: the executor forgets the key mid-read."""

    view: StoreStateView | None = None

    def state_get(self, key: bytes) -> bytes | None:
        value = super().state_get(key)
        assert self.view is not None
        commit_writing(self, key, b"newer")
        self.view.forget([key])
        return value


def test_state_view_does_not_keep_a_read_that_raced_with_a_forget() -> None:
    store = _ForgettingStore()
    store.set_genesis(genesis_hash=bytes(32), app_hash=bytes(32), state_writes={b"a/k": b"old"})
    view = StoreStateView(store)
    store.view = view
    assert view.get(b"a/k") == b"old", "the read itself answers what it read"
    assert b"a/k" not in view._values, "but a stale value is never cached"
