"""The state-key filter never hides a key the store holds: not after writes, deletes and
reopening, not once it is full (it turns itself off), and reads answer as LevelDB would."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import leveldb
from storage.interface import StorageError
from storage.key_filter import KeyFilter
from storage.leveldb import LevelDbChainStore
from tests.storage.storage_helpers import (
    GENESIS_APP_HASH,
    GENESIS_HASH,
    commit_state_writes,
)


class _Bytes(bytes):
    """A bytes subclass with its own hash: the filter must not trust it."""

    def __hash__(self) -> int:
        return 7


def test_added_keys_are_always_held_and_most_others_are_not() -> None:
    key_filter = KeyFilter(bits_log2=20)
    added = [b"k/%d" % index for index in range(5_000)]
    key_filter.add_all(added)
    assert all(key_filter.may_hold(key) for key in added)
    false_positives = sum(key_filter.may_hold(b"other/%d" % index) for index in range(5_000))
    assert false_positives < 250, "about 0.9% expected at 5,000 keys in 2^20 bits"


def test_a_bytes_subclass_is_added_under_its_bytes_hash() -> None:
    key_filter = KeyFilter(bits_log2=16)
    key_filter.add_all([_Bytes(b"odd")])
    assert key_filter.may_hold(b"odd")


def test_the_filter_turns_itself_off_past_its_key_bound() -> None:
    key_filter = KeyFilter(bits_log2=16, keys_max=3)
    key_filter.add_all([b"a", b"b", b"a"])
    key_filter.add_all([b"c", b"c"])
    on = [key_filter.on]  # True: a key added twice counts once
    key_filter.add_all([b"d"])
    on.append(key_filter.on)
    assert on == [True, False]
    assert key_filter.may_hold(b"never added"), "off: every read goes to LevelDB"
    key_filter.add_all([b"e"])  # harmless once off


def _store(path: Path) -> LevelDbChainStore:
    store = LevelDbChainStore(path)
    store.set_genesis(
        genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH, state_writes={b"g/1": b"genesis"}
    )
    return store


def test_reads_after_writes_deletes_and_reopen(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    writes: dict[bytes, bytes | None] = {b"a/1": b"one", b"a/2": b"two", b"a/3": b""}
    commit_state_writes(store, 1, writes)
    commit_state_writes(store, 2, {b"a/2": None})
    for reopened in (False, True):
        if reopened:
            store.close()
            store = _store(tmp_path / "db")
        assert store.state_get(b"g/1") == b"genesis"
        assert store.state_get(b"a/1") == b"one"
        assert store.state_get(b"a/2") is None
        assert store.state_get(b"a/3") == b"", "an empty value is held"
        assert store.state_get(b"a/never") is None
        assert store.state_get(_Bytes(b"a/1")) == b"one"
        assert all(store.state_may_hold(key) for key in (b"g/1", b"a/1", b"a/3"))
        assert not store.state_may_hold(b"a/never")
        assert store.state_may_hold(_Bytes(b"a/never")), "a subclass is never trusted"
    store.close()
    for read in (store.state_get, store.state_may_hold):
        with pytest.raises(StorageError, match="closed"):
            read(b"a/never")


def test_a_store_with_more_keys_than_the_filter_takes_reads_from_leveldb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path / "db")
    writes: dict[bytes, bytes | None] = {b"k/%d" % index: b"v" for index in range(20)}
    commit_state_writes(store, 1, writes)
    store.close()
    monkeypatch.setattr(leveldb, "KeyFilter", lambda: KeyFilter(bits_log2=16, keys_max=5))
    store = LevelDbChainStore(tmp_path / "db")
    assert not store._state_keys.on
    assert all(store.state_get(key) == b"v" for key in writes)
    assert store.state_get(b"k/none") is None
    store.close()


_keys = st.binary(min_size=1, max_size=2).map(lambda raw: bytes(b % 5 for b in raw))
_blocks = st.lists(
    st.tuples(
        st.dictionaries(_keys, st.none() | st.binary(max_size=3), max_size=8),
        st.booleans(),  # reopen the store after this block
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(blocks=_blocks)
def test_every_key_reads_as_the_model_says(
    blocks: list[tuple[dict[bytes, bytes | None], bool]],
) -> None:
    """The `dict` model answers for every key of the alphabet, written or not."""
    alphabet = [bytes([a]) for a in range(5)] + [bytes([a, b]) for a in range(5) for b in range(5)]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "db"
        store = _store(path)
        model: dict[bytes, bytes] = {b"g/1": b"genesis"}
        for height, (writes, reopen) in enumerate(blocks, start=1):
            commit_state_writes(store, height, writes, model)
            if reopen:
                store.close()
                store = _store(path)
            assert [store.state_get(key) for key in alphabet] == [
                model.get(key) for key in alphabet
            ]
        store.close()
