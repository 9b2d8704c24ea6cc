"""The inlined commit path writes exactly the records the plain helpers define, refuses the
same bad commits, and a store written with Snappy-compressed tables still opens."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import plyvel
import pytest

from storage import keys, leveldb_open
from storage.checksum import seal_value
from storage.interface import StorageError
from storage.leveldb import LevelDbChainStore
from tests.storage.storage_helpers import (
    GENESIS_APP_HASH,
    GENESIS_HASH,
    assert_height_intact,
    fake_commit,
)


def _store(path: Path) -> LevelDbChainStore:
    store = LevelDbChainStore(path)
    store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    return store


def test_tx_index_and_state_records_are_the_plain_sealed_values(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    commit = fake_commit(1, tx_count=50, state_keys=20)
    commit = replace(commit, state_writes={**commit.state_writes, b"gone": None})
    store.commit_block(commit)
    store.close()
    db = plyvel.DB(str(tmp_path / "db"))
    try:
        for index, tx_hash in enumerate(commit.tx_hashes):
            key = keys.TX_LOCATION + tx_hash
            assert db.get(key) == seal_value(key, keys.encode_location(1, index))
        for state_key, value in commit.state_writes.items():
            key = keys.STATE + state_key
            assert db.get(key) == (None if value is None else seal_value(key, value))
    finally:
        db.close()


def test_unindexed_txs_are_skipped(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    commit = replace(fake_commit(1, tx_count=5), unindexed_txs=frozenset({1, 3}))
    store.commit_block(commit)
    located = [store.tx_location(tx_hash) for tx_hash in commit.tx_hashes]
    assert located == [(1, 0), None, (1, 2), None, (1, 4)]
    store.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tx_hashes": [b"\x01" * 32, b""]}, "tx hash must be"),
        ({"tx_hashes": [b"\x01" * 65]}, "tx hash must be"),
        ({"tx_hashes": ["not bytes"]}, "tx hash must be"),
        ({"state_writes": {b"k" * 1025: b"v"}}, "state key of 1025 bytes"),
        ({"state_writes": {b"": b"v"}}, "state key of 0 bytes"),
        ({"state_writes": {"text": b"v"}}, "state key must be bytes"),
        ({"state_writes": {b"k": "text"}}, "state value must be bytes or None"),
    ],
)
def test_bad_commits_are_refused_with_a_clear_error(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    store = _store(tmp_path / "db")
    with pytest.raises(StorageError, match=message):
        store.commit_block(replace(fake_commit(1), **change))  # type: ignore[arg-type]
    assert store.committed_height() == 0
    store.close()


def test_store_written_with_snappy_tables_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert leveldb_open.compression is None  # the default: tables are incompressible
    commits = [fake_commit(height, tx_count=200, state_keys=50) for height in (1, 2, 3)]
    with monkeypatch.context() as patched:
        patched.setattr(leveldb_open, "compression", "snappy")
        store = _store(tmp_path / "db")
        for commit in commits:
            store.commit_block(commit)
        store.close()
        compacted = plyvel.DB(str(tmp_path / "db"), compression="snappy")
        compacted.compact_range()  # push the records into Snappy-compressed tables
        compacted.close()
    reopened = LevelDbChainStore(tmp_path / "db")
    assert reopened.committed_height() == 3
    for commit in commits:
        assert_height_intact(reopened, commit)
    reopened.close()
