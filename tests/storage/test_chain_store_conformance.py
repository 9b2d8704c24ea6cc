"""One conformance suite for the ChainStore contract, run against LevelDB and the in-memory
twin. Each test opens a store through `backend.open()`, which reopens the same directory (or
MemoryDisk), so "reopen returns exactly the same data" is checked for both."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.interface import ChainStore, CorruptionError, StorageError
from tests.storage.storage_helpers import (
    GENESIS_APP_HASH,
    GENESIS_HASH,
    Backend,
    assert_height_absent,
    assert_height_intact,
    commit_state_writes,
    fake_commit,
    leveldb_backend,
    memory_backend,
)


@pytest.fixture(params=["leveldb", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "leveldb":
        return leveldb_backend(tmp_path / "chain")
    return memory_backend()


@pytest.fixture
def store(backend: Backend) -> Iterator[ChainStore]:
    opened = backend.open()
    opened.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    yield opened
    opened.close()


def test_new_store_is_empty(backend: Backend) -> None:
    fresh = backend.open()
    assert fresh.committed_height() == 0
    assert fresh.genesis_hash() is None
    assert fresh.app_hash(0) is None
    assert fresh.block(1) is None
    assert fresh.consensus_load() == {}
    assert list(fresh.state_scan(b"", limit=10)) == []
    fresh.close()


def test_commit_and_read_back_every_field(store: ChainStore) -> None:
    commits = [fake_commit(height, tx_count=height * 2) for height in range(1, 6)]
    for commit in commits:
        store.commit_block(commit)
        assert store.committed_height() == commit.height
    for commit in commits:
        assert_height_intact(store, commit)
    assert store.app_hash(0) == GENESIS_APP_HASH
    assert_height_absent(store, fake_commit(6))
    assert store.block(-1) is None
    assert store.block(0) is None


@pytest.mark.parametrize("height", [0, 1, 3, -1])
def test_wrong_height_is_refused_and_writes_nothing(store: ChainStore, height: int) -> None:
    store.commit_block(fake_commit(1))
    wrong = dataclasses.replace(fake_commit(2), height=height)
    with pytest.raises(StorageError, match="expected 2"):
        store.commit_block(wrong)
    assert store.committed_height() == 1
    assert_height_absent(store, fake_commit(2))


def test_commit_before_genesis_is_refused(backend: Backend) -> None:
    fresh = backend.open()
    with pytest.raises(StorageError, match="genesis"):
        fresh.commit_block(fake_commit(1))
    assert fresh.committed_height() == 0
    fresh.close()


def test_duplicate_block_hash_is_refused(store: ChainStore) -> None:
    first = fake_commit(1)
    store.commit_block(first)
    replay = dataclasses.replace(fake_commit(2), block_hash=first.block_hash)
    with pytest.raises(StorageError, match="already stored"):
        store.commit_block(replay)
    assert store.committed_height() == 1


def test_bad_field_types_are_refused(store: ChainStore) -> None:
    with pytest.raises(StorageError):
        store.commit_block(dataclasses.replace(fake_commit(1), app_hash=b""))
    with pytest.raises(StorageError):
        store.commit_block(dataclasses.replace(fake_commit(1), state_writes={b"": b"x"}))
    with pytest.raises(StorageError):
        store.commit_block(dataclasses.replace(fake_commit(1), state_writes={b"k": "text"}))  # type: ignore[dict-item]
    assert store.committed_height() == 0


def test_tx_index(store: ChainStore) -> None:
    commit = fake_commit(1, tx_count=50)
    store.commit_block(commit)
    assert store.tx_location(commit.tx_hashes[0]) == (1, 0)
    assert store.tx_location(commit.tx_hashes[49]) == (1, 49)
    assert store.tx_location(b"\x00" * 32) is None


def test_unindexed_txs_keep_the_index_on_the_first_copy(store: ChainStore) -> None:
    """A tx ordered twice (a new primary re-proposed it) executes once; the second copy is
    a replay and must not move the index away from the copy that executed."""
    first = fake_commit(1, tx_count=3)
    store.commit_block(first)
    again = dataclasses.replace(
        fake_commit(2, tx_count=3),
        tx_hashes=[first.tx_hashes[1], *fake_commit(2, tx_count=3).tx_hashes[1:]],
        unindexed_txs=frozenset({0}),
    )
    store.commit_block(again)
    assert store.tx_location(first.tx_hashes[1]) == (1, 1)
    assert store.tx_location(again.tx_hashes[1]) == (2, 1)


def test_state_writes_overwrite_and_delete(store: ChainStore) -> None:
    store.commit_block(dataclasses.replace(fake_commit(1), state_writes={b"a": b"1", b"b": b"2"}))
    store.commit_block(dataclasses.replace(fake_commit(2), state_writes={b"a": b"3", b"b": None}))
    assert store.state_get(b"a") == b"3"
    assert store.state_get(b"b") is None
    assert list(store.state_scan(b"", limit=10)) == [(b"a", b"3")]
    store.commit_block(dataclasses.replace(fake_commit(3), state_writes={b"zz": None}))
    assert store.state_get(b"zz") is None


def test_state_scan_prefix_start_after_limit(store: ChainStore) -> None:
    writes: dict[bytes, bytes | None] = {
        b"car/" + bytes([index]): b"v%d" % index for index in (1, 5, 2, 0xFF, 9)
    }
    writes.update({b"cap": b"x", b"cas": b"y", b"d": b"z", b"car": b"bare"})
    commit_state_writes(store, 1, writes)

    def keys(prefix: bytes, start_after: bytes | None = None, limit: int = 100) -> list[bytes]:
        return [key for key, _ in store.state_scan(prefix, start_after=start_after, limit=limit)]

    cars = [b"car/\x01", b"car/\x02", b"car/\x05", b"car/\x09", b"car/\xff"]
    assert keys(b"car/") == cars
    assert keys(b"car") == [b"car", *cars]
    assert keys(b"car/", limit=2) == cars[:2]
    assert keys(b"car/", start_after=b"car/\x02") == cars[2:]
    assert keys(b"car/", start_after=b"car/\x03", limit=1) == [b"car/\x05"]
    assert keys(b"car/", start_after=b"car/\xff") == []
    assert keys(b"car/", start_after=b"a") == cars  # before the prefix: from its start
    assert keys(b"car/", start_after=b"cas") == []  # after the prefix: nothing
    assert keys(b"car/", limit=0) == []
    assert keys(b"") == sorted(key for key in writes)
    assert dict(store.state_scan(b"ca", limit=100))[b"cap"] == b"x"
    with pytest.raises(StorageError):
        keys(b"car/", limit=-1)


def test_state_scan_pages_through_everything(store: ChainStore) -> None:
    writes: dict[bytes, bytes | None] = {b"k%04d" % index: b"%d" % index for index in range(250)}
    commit_state_writes(store, 1, writes)
    seen: list[bytes] = []
    cursor: bytes | None = None
    for _ in range(10):
        page = list(store.state_scan(b"k", start_after=cursor, limit=64))
        if not page:
            break
        seen.extend(key for key, _ in page)
        cursor = page[-1][0]
    assert seen == sorted(writes)


def test_a_state_snapshot_keeps_its_height_while_blocks_commit(store: ChainStore) -> None:
    """A query reads several keys: the snapshot it reads through must show one height."""
    commit_state_writes(store, 1, {b"acct/a": b"10", b"acct/b": b"0", b"gone": b"x"})
    with store.state_snapshot() as snapshot:
        assert snapshot.height == 1
        commit_state_writes(store, 2, {b"acct/a": b"3", b"acct/b": b"7", b"gone": None})
        commit_state_writes(store, 3, {b"acct/c": b"1"})
        assert snapshot.height == 1
        assert snapshot.get(b"acct/a") == b"10"
        assert snapshot.get(b"gone") == b"x"
        assert snapshot.get(b"acct/c") is None
        assert list(snapshot.scan(b"acct/", limit=10)) == [(b"acct/a", b"10"), (b"acct/b", b"0")]
        assert list(snapshot.scan(b"acct/", start_after=b"acct/a", limit=10)) == [(b"acct/b", b"0")]
        with pytest.raises(StorageError):
            snapshot.get(b"")
    with pytest.raises(StorageError):
        snapshot.get(b"acct/a")  # closed on leaving the block
    assert store.state_get(b"acct/a") == b"3"
    with store.state_snapshot() as later:
        assert later.height == 3
        assert [key for key, _ in later.scan(b"acct/", limit=10)] == [
            b"acct/a",
            b"acct/b",
            b"acct/c",
        ]


def test_consensus_state_round_trip(backend: Backend) -> None:
    opened = backend.open()
    opened.consensus_write([(b"view", b"\x00\x07"), (b"vote/1", b"a"), (b"vote/2", b"b")])
    opened.consensus_write([(b"vote/1", None), (b"view", b"\x00\x08"), (b"gone", None)])
    opened.consensus_write([])
    expected = {b"view": b"\x00\x08", b"vote/2": b"b"}
    assert opened.consensus_load() == expected
    opened.close()
    reopened = backend.open()
    assert reopened.consensus_load() == expected
    reopened.close()


def test_genesis_is_set_once_and_checked(backend: Backend) -> None:
    opened = backend.open()
    opened.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    opened.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)  # same: no-op
    with pytest.raises(StorageError, match="genesis"):
        opened.set_genesis(genesis_hash=b"\x01" * 32, app_hash=GENESIS_APP_HASH)
    with pytest.raises(StorageError, match="genesis"):
        opened.set_genesis(genesis_hash=GENESIS_HASH, app_hash=b"\x02" * 32)
    opened.close()
    reopened = backend.open()
    assert reopened.genesis_hash() == GENESIS_HASH
    assert reopened.app_hash(0) == GENESIS_APP_HASH
    with pytest.raises(StorageError, match="genesis"):
        reopened.set_genesis(genesis_hash=b"\x01" * 32, app_hash=GENESIS_APP_HASH)
    reopened.close()


def test_reopen_returns_exactly_the_same_data(backend: Backend) -> None:
    opened = backend.open()
    opened.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    commits = [fake_commit(height, tx_count=10, state_keys=5) for height in range(1, 21)]
    for commit in commits:
        opened.commit_block(commit)
    opened.consensus_write([(b"term", b"\x05")])
    state_before = list(opened.state_scan(b"", limit=1000))
    opened.close()

    reopened = backend.open()
    assert reopened.committed_height() == 20
    assert reopened.genesis_hash() == GENESIS_HASH
    for commit in commits:
        assert_height_intact(reopened, commit)
    assert list(reopened.state_scan(b"", limit=1000)) == state_before
    assert reopened.consensus_load() == {b"term": b"\x05"}
    assert reopened.size_bytes() > 0
    reopened.commit_block(fake_commit(21))  # and it goes on from where it was
    assert reopened.committed_height() == 21
    reopened.close()


def test_close_is_idempotent_and_use_after_close_fails(backend: Backend) -> None:
    opened = backend.open()
    opened.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    opened.close()
    opened.close()
    calls = [
        opened.committed_height,
        lambda: opened.block(1),
        lambda: opened.app_hash(0),
        lambda: opened.height_of(b"\x00" * 32),
        lambda: opened.tx_location(b"\x00" * 32),
        lambda: opened.state_get(b"k"),
        lambda: list(opened.state_scan(b"", limit=1)),
        opened.genesis_hash,
        opened.consensus_load,
        lambda: opened.consensus_write([(b"k", b"v")]),
        lambda: opened.commit_block(fake_commit(1)),
        opened.size_bytes,
    ]
    for call in calls:
        with pytest.raises(StorageError, match="closed"):
            call()


def test_second_open_while_open_is_refused(backend: Backend) -> None:
    opened = backend.open()
    with pytest.raises(StorageError, match="locked") as raised:
        backend.open()
    assert not isinstance(raised.value, CorruptionError)
    opened.close()
    backend.open().close()  # free again once closed


def test_size_grows_with_data(store: ChainStore) -> None:
    before = store.size_bytes()
    for height in range(1, 4):
        store.commit_block(fake_commit(height, tx_count=200, state_keys=100))
    assert store.size_bytes() > before
