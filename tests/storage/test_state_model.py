"""Property test: both backends behave like a plain dict for state writes and scans.

The dict is the "dumb" reference (etcd's quorum/quick_test.go idea): random blocks of
writes and deletes over a small key alphabet, then every kind of scan is compared.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.interface import ChainStore
from storage.leveldb import LevelDbChainStore
from storage.memory import MemoryChainStore
from tests.storage.storage_helpers import (
    GENESIS_APP_HASH,
    GENESIS_HASH,
    commit_state_writes,
)

state_keys = st.binary(min_size=1, max_size=3).map(lambda raw: bytes(b % 4 for b in raw))
block_writes = st.dictionaries(state_keys, st.none() | st.binary(max_size=8), max_size=12)
scan_args = st.tuples(
    st.binary(max_size=2).map(lambda raw: bytes(b % 4 for b in raw)),
    st.none() | state_keys,
    st.integers(min_value=0, max_value=20),
)


def model_scan(
    model: dict[bytes, bytes], prefix: bytes, start_after: bytes | None, limit: int
) -> list[tuple[bytes, bytes]]:
    matching = sorted(
        (key, value)
        for key, value in model.items()
        if key.startswith(prefix) and (start_after is None or key > start_after)
    )
    return matching[:limit]


def check_against_model(
    store: ChainStore,
    blocks: list[dict[bytes, bytes | None]],
    scans: list[tuple[bytes, bytes | None, int]],
) -> None:
    store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    model: dict[bytes, bytes] = {}
    for height, writes in enumerate(blocks, start=1):
        commit_state_writes(store, height, writes, model)
    for key in {key for writes in blocks for key in writes}:
        assert store.state_get(key) == model.get(key)
    for prefix, start_after, limit in scans:
        got = list(store.state_scan(prefix, start_after=start_after, limit=limit))
        assert got == model_scan(model, prefix, start_after, limit), (prefix, start_after)


@settings(max_examples=40, deadline=None)
@given(blocks=st.lists(block_writes, min_size=1, max_size=5), scans=st.lists(scan_args))
def test_memory_store_matches_dict_model(
    blocks: list[dict[bytes, bytes | None]], scans: list[tuple[bytes, bytes | None, int]]
) -> None:
    store = MemoryChainStore()
    check_against_model(store, blocks, scans)
    store.close()


@settings(max_examples=25, deadline=None)
@given(blocks=st.lists(block_writes, min_size=1, max_size=5), scans=st.lists(scan_args))
def test_leveldb_store_matches_dict_model(
    blocks: list[dict[bytes, bytes | None]], scans: list[tuple[bytes, bytes | None, int]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = LevelDbChainStore(Path(directory) / "chain")
        try:
            check_against_model(store, blocks, scans)
        finally:
            store.close()
