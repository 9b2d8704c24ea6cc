"""Checks shared by both backends, so that they refuse the same things with the same errors.

The conformance suite (tests/storage/) runs against both stores; keeping the rules here is
what makes "identical semantics" true by construction rather than by copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from storage import keys
from storage.interface import BlockCommit, StorageError

scan_limit_max = 100_000  # one state_scan returns at most this many pairs
key_bytes_max = 1024  # service-state and consensus keys
hash_bytes_max = 64  # block, tx, app and genesis hashes
consensus_write_records_max = 100_000  # records in one consensus_write batch


def check_commit(commit: BlockCommit, *, committed_height: int, has_genesis: bool) -> None:
    """Raise StorageError unless `commit` may be applied on top of `committed_height`.

    A wrong height is a programming error in the caller (blocks execute strictly in order),
    but it must never reach the disk, so it is an error, not just an assert.
    """
    if not has_genesis:
        raise StorageError("commit_block before set_genesis: the store has no genesis")
    if commit.height != committed_height + 1:
        raise StorageError(
            f"commit_block at height {commit.height}, expected {committed_height + 1} "
            f"(committed height is {committed_height})"
        )
    if commit.height > keys.height_max:
        raise StorageError(f"height {commit.height} out of range")
    for name, value in (
        ("block_hash", commit.block_hash),
        ("app_hash", commit.app_hash),
        ("results_root", commit.results_root),
    ):
        _check_hash(name, value)
    if len(commit.tx_hashes) > keys.tx_index_max:
        raise StorageError(f"{len(commit.tx_hashes)} txs in one block")
    # The per-item checks run for every tx and state write of every block: a fast pass
    # over plain comprehensions first, and the per-item calls (for their exact error
    # messages) only when that pass finds something wrong.
    if not _all_hashes_well_formed(commit.tx_hashes):
        for tx_hash in commit.tx_hashes:
            _check_hash("tx hash", tx_hash)
    if not _all_state_writes_well_formed(commit.state_writes):
        for state_key, state_value in commit.state_writes.items():
            check_key("state", state_key)
            check_value("state", state_value)


def _all_hashes_well_formed(hashes: Sequence[bytes]) -> bool:
    limit = hash_bytes_max
    return all(type(value) is bytes and 0 < len(value) <= limit for value in hashes)


def _all_state_writes_well_formed(writes: Mapping[bytes, bytes | None]) -> bool:
    limit = key_bytes_max
    return all(
        type(key) is bytes and 0 < len(key) <= limit and (value is None or type(value) is bytes)
        for key, value in writes.items()
    )


def check_genesis(
    *, genesis_hash: bytes, app_hash: bytes, stored: tuple[bytes, bytes] | None
) -> bool:
    """True if genesis must be written; False if the same genesis is already there.

    A different genesis means this directory belongs to another chain: refuse it.
    """
    _check_hash("genesis_hash", genesis_hash)
    _check_hash("genesis app_hash", app_hash)
    if stored is None:
        return True
    stored_hash, stored_app_hash = stored
    if (stored_hash, stored_app_hash) != (genesis_hash, app_hash):
        raise StorageError(
            f"store belongs to genesis {stored_hash.hex()} (app hash {stored_app_hash.hex()}), "
            f"not {genesis_hash.hex()} (app hash {app_hash.hex()})"
        )
    return False


def check_scan(prefix: bytes, start_after: bytes | None, limit: int) -> None:
    check_key("scan prefix", prefix, allow_empty=True)
    if start_after is not None:
        check_key("scan start_after", start_after, allow_empty=True)
    if not 0 <= limit <= scan_limit_max:
        raise StorageError(f"state_scan limit {limit} outside 0..{scan_limit_max}")


def check_consensus_records(records: Sequence[tuple[bytes, bytes | None]]) -> None:
    if len(records) > consensus_write_records_max:
        raise StorageError(
            f"consensus_write of {len(records)} records (at most {consensus_write_records_max})"
        )
    for key, value in records:
        check_key("consensus", key)
        check_value("consensus", value)


def check_key(what: str, key: bytes, *, allow_empty: bool = False) -> None:
    if not isinstance(key, bytes):
        raise StorageError(f"{what} key must be bytes, got {type(key).__name__}")
    if len(key) > key_bytes_max or (not key and not allow_empty):
        raise StorageError(f"{what} key of {len(key)} bytes (allowed 1..{key_bytes_max})")


def check_value(what: str, value: bytes | None) -> None:
    if value is not None and not isinstance(value, bytes):
        raise StorageError(f"{what} value must be bytes or None, got {type(value).__name__}")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or not 0 < len(value) <= hash_bytes_max:
        raise StorageError(f"{name} must be 1..{hash_bytes_max} bytes")
