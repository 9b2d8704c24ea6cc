"""MemoryChainStore specifics: crash and restart over the same MemoryDisk."""

from __future__ import annotations

import pytest

from storage.interface import StorageError
from storage.memory import MemoryChainStore, MemoryDisk
from tests.storage.storage_helpers import (
    GENESIS_APP_HASH,
    GENESIS_HASH,
    assert_height_absent,
    assert_height_intact,
    fake_commit,
)


def test_crash_keeps_everything_that_returned() -> None:
    disk = MemoryDisk()
    store = MemoryChainStore(disk)
    store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    for height in range(1, 4):
        store.commit_block(fake_commit(height))
    store.consensus_write([(b"view", b"\x03")])
    store.crash()
    with pytest.raises(StorageError, match="closed"):
        store.committed_height()

    restarted = MemoryChainStore(disk)
    assert restarted.committed_height() == 3
    for height in range(1, 4):
        assert_height_intact(restarted, fake_commit(height))
    assert_height_absent(restarted, fake_commit(4))
    assert restarted.consensus_load() == {b"view": b"\x03"}
    restarted.close()


def test_refused_commit_leaves_the_disk_untouched() -> None:
    disk = MemoryDisk()
    store = MemoryChainStore(disk)
    store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    with pytest.raises(StorageError):
        store.commit_block(fake_commit(2))
    store.crash()
    assert disk.committed_height == 0
    assert not disk.blocks
    assert not disk.state


def test_each_store_gets_its_own_disk_by_default() -> None:
    first, second = MemoryChainStore(), MemoryChainStore()
    first.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    assert second.genesis_hash() is None
    first.close()
    second.close()


def test_injected_write_failure_changes_nothing_until_cleared() -> None:
    disk = MemoryDisk()
    store = MemoryChainStore(disk)
    store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    store.commit_block(fake_commit(1))
    disk.write_failure = "no space left on device"
    with pytest.raises(StorageError, match="no space left"):
        store.commit_block(fake_commit(2))
    with pytest.raises(StorageError, match="no space left"):
        store.consensus_write([(b"view", b"\x01")])
    assert store.committed_height() == 1
    assert_height_absent(store, fake_commit(2))
    assert store.consensus_load() == {}
    assert store.block(1) == fake_commit(1).block  # reads still work
    disk.write_failure = None
    store.commit_block(fake_commit(2))
    assert_height_intact(store, fake_commit(2))
    store.close()
