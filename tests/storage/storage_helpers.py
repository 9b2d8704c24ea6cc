"""Helpers for the storage tests: deterministic fake commits and a backend that can reopen.

Payloads are derived from the height alone, so a process that did not write a store (the
parent in the kill -9 test) can still say exactly what every height must hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from storage.interface import BlockCommit, ChainStore
from storage.leveldb import LevelDbChainStore
from storage.memory import MemoryChainStore, MemoryDisk

GENESIS_HASH = hashlib.sha256(b"genesis").digest()
GENESIS_APP_HASH = hashlib.sha256(b"genesis app").digest()


def digest(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def tx_hashes_for(height: int, tx_count: int) -> list[bytes]:
    return [digest("tx", height, index) for index in range(tx_count)]


def fake_commit(height: int, *, tx_count: int = 3, state_keys: int = 2) -> BlockCommit:
    """A commit whose every field is a function of (height, tx_count, state_keys)."""
    state_writes: dict[bytes, bytes | None] = {
        b"acct/%06d/%03d" % (height, index): digest("state", height, index)
        for index in range(state_keys)
    }
    return BlockCommit(
        height=height,
        block_hash=digest("block hash", height),
        block=digest("block", height) * (1 + tx_count),
        seal=digest("seal", height) * 3,
        tx_hashes=tx_hashes_for(height, tx_count),
        results=digest("results", height) * (1 + tx_count // 4),
        results_root=digest("results root", height),
        app_hash=digest("app hash", height),
        state_writes=state_writes,
    )


def commit_state_writes(
    store: ChainStore,
    height: int,
    writes: dict[bytes, bytes | None],
    model: dict[bytes, bytes] | None = None,
) -> None:
    """Commit block `height` carrying these state writes (None deletes a key) and, given a
    `model` (a dict of the state the store should hold), apply them to it too."""
    store.commit_block(dataclasses.replace(fake_commit(height), state_writes=writes))
    if model is None:
        return
    for key, value in writes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def assert_height_intact(store: ChainStore, commit: BlockCommit) -> None:
    """Every field of `commit` reads back exactly."""
    height = commit.height
    assert store.block(height) == commit.block, height
    assert store.seal(height) == commit.seal, height
    assert store.results(height) == commit.results, height
    assert store.results_root(height) == commit.results_root, height
    assert store.app_hash(height) == commit.app_hash, height
    assert store.block_hash(height) == commit.block_hash, height
    assert store.height_of(commit.block_hash) == height
    for index, tx_hash in enumerate(commit.tx_hashes):
        assert store.tx_location(tx_hash) == (height, index)
    for key, value in commit.state_writes.items():
        assert store.state_get(key) == value


def assert_height_absent(store: ChainStore, commit: BlockCommit) -> None:
    """Not a byte of `commit` is visible: nothing half-present."""
    height = commit.height
    assert store.block(height) is None, height
    assert store.seal(height) is None, height
    assert store.results(height) is None, height
    assert store.results_root(height) is None, height
    assert store.app_hash(height) is None, height
    assert store.block_hash(height) is None, height
    assert store.height_of(commit.block_hash) is None
    for tx_hash in commit.tx_hashes:
        assert store.tx_location(tx_hash) is None
    for key in commit.state_writes:
        assert store.state_get(key) is None


def build_store(path: Path, height: int, *, tx_count: int = 5) -> None:
    """A closed LevelDB store with genesis, `height` fake blocks and one consensus record."""
    store = LevelDbChainStore(path)
    store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    for block_height in range(1, height + 1):
        store.commit_block(fake_commit(block_height, tx_count=tx_count))
    store.consensus_write([(b"view", b"\x01")])
    store.close()


@dataclass
class Backend:
    """Opens a store over the same location again and again, like a restarting node."""

    name: str
    open: Callable[[], ChainStore]


def leveldb_backend(path: Path) -> Backend:
    return Backend("leveldb", lambda: LevelDbChainStore(path))


def memory_backend() -> Backend:
    disk = MemoryDisk()
    return Backend("memory", lambda: MemoryChainStore(disk))
