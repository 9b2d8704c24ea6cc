"""The chain store over LevelDB (plyvel): one synced write batch per committed block.

Theory of operation (docs/STORAGE.md has the full key layout):

- Every value is stored with a CRC32 of key and value (storage/checksum.py) and checked on
  every read; a mismatch raises CorruptionError naming the key.
- `commit_block` puts the block, seal, results, app hash, results root, block hash, the
  hash -> height and tx hash -> location indices, the service-state writes and the new
  committed height into ONE `write_batch(sync=True)`. LevelDB applies a batch atomically
  (one log record with its own CRC), so after a crash a block is either wholly there, height
  included, or not at all.
- Opening checks the format version, that the committed height's records all exist and
  verify, that the hash index agrees, and that nothing lies beyond the committed height.
  An inconsistent store raises CorruptionError; the node must not run on it.
- LevelDB's own LOCK file keeps a second process out; that becomes StorageError.

The store is not thread-safe for writers: the node's driver is the one writer. Reads may come
from other threads (LevelDB allows it); closing while another thread reads is the caller's bug.
"""

from __future__ import annotations

import itertools
import logging
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import plyvel

from storage import keys, rules
from storage.checksum import CHECKSUM_BYTES, open_value, seal_value
from storage.interface import BlockCommit, CorruptionError, StorageError
from storage.key_filter import KeyFilter
from storage.leveldb_open import check_consistency, error_text, open_leveldb

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_KEYS_PER_LOAD = 4096  # state keys read per chunk while loading the key filter at open


class LevelDbChainStore:
    """ChainStore on a LevelDB directory; see the module docstring for the guarantees."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._db: Any = open_leveldb(self._path)
        try:
            self._height, self._genesis = check_consistency(self._db, self._path)
            self._state_keys = _load_state_keys(self._db, self._path)
        except BaseException:
            self._db.close()
            raise
        log.info("opened chain store %s at height %d", self._path, self._height)

    # -- reads ---------------------------------------------------------------------------

    def committed_height(self) -> int:
        self._require_open()
        return self._height

    def block(self, height: int) -> bytes | None:
        return self._get_at(keys.BLOCK, height)

    def seal(self, height: int) -> bytes | None:
        return self._get_at(keys.SEAL, height)

    def results(self, height: int) -> bytes | None:
        return self._get_at(keys.RESULTS, height)

    def app_hash(self, height: int) -> bytes | None:
        return self._get_at(keys.APP_HASH, height)

    def results_root(self, height: int) -> bytes | None:
        return self._get_at(keys.RESULTS_ROOT, height)

    def block_hash(self, height: int) -> bytes | None:
        return self._get_at(keys.BLOCK_HASH, height)

    def height_of(self, block_hash: bytes) -> int | None:
        raw = self._get(keys.HEIGHT_OF + block_hash)
        return None if raw is None else _decode(keys.decode_height, raw, "height_of")

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._get(keys.TX_LOCATION + tx_hash)
        return None if raw is None else _decode(keys.decode_location, raw, "tx_location")

    def state_get(self, key: bytes) -> bytes | None:
        # Every tx reads a few keys: the common case is checked inline, and check_key
        # runs only to raise its exact error (or passes a bytes subclass, which skips the
        # filter: its hash might differ).
        if type(key) is not bytes or not 0 < len(key) <= rules.key_bytes_max:
            rules.check_key("state", key)
        elif not self._state_keys.may_hold(key):
            self._require_open()
            return None  # never held (storage/key_filter.py): no LevelDB read
        return self._get(keys.STATE + key)

    def state_snapshot(self) -> LevelDbStateSnapshot:
        """The committed state as it is now, for a reader of several keys (a query): a
        LevelDB snapshot, so a block committed meanwhile stays invisible to it."""
        self._require_open()
        return LevelDbStateSnapshot(self._db.snapshot(), self._state_keys)

    def state_may_hold(self, key: bytes) -> bool:
        self._require_open()
        return type(key) is not bytes or self._state_keys.may_hold(key)

    def state_scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix` in ascending order, after `start_after`, at most `limit`.

        The page is read eagerly (it is bounded by `limit`), so the caller never holds a
        LevelDB iterator across a close or a commit.
        """
        rules.check_scan(prefix, start_after, limit)
        self._require_open()
        return _state_page(self._db, prefix, start_after, limit)

    def genesis_hash(self) -> bytes | None:
        self._require_open()
        return self._genesis

    def consensus_load(self) -> dict[bytes, bytes]:
        self._require_open()
        with (
            _translated("loading consensus state"),
            self._db.iterator(prefix=keys.CONSENSUS, verify_checksums=True) as iterator,
        ):
            return {key[1:]: open_value(key, stored) for key, stored in iterator}

    def size_bytes(self) -> int:
        self._require_open()
        return sum(entry.stat().st_size for entry in os.scandir(self._path) if entry.is_file())

    # -- writes --------------------------------------------------------------------------

    def commit_block(self, commit: BlockCommit) -> None:
        self._require_open()
        rules.check_commit(
            commit, committed_height=self._height, has_genesis=self._genesis is not None
        )
        if self._get(keys.HEIGHT_OF + commit.block_hash) is not None:
            raise StorageError(f"block hash {commit.block_hash.hex()} is already stored")
        batch = self._db.write_batch(sync=True)
        _put_block(batch, commit, self._state_keys)
        self._write(batch, f"commit_block at height {commit.height}")
        self._height = commit.height

    def set_genesis(
        self,
        *,
        genesis_hash: bytes,
        app_hash: bytes,
        state_writes: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Once, before the first commit, with the genesis service state in the same synced
        batch. Again with the same values: nothing. With other values: StorageError."""
        self._require_open()
        stored = None
        if self._genesis is not None:
            stored_app_hash = self.app_hash(0)
            assert stored_app_hash is not None  # checked on open
            stored = (self._genesis, stored_app_hash)
        if not rules.check_genesis(genesis_hash=genesis_hash, app_hash=app_hash, stored=stored):
            return
        batch = self._db.write_batch(sync=True)
        _put(batch, keys.META_GENESIS, genesis_hash)
        _put(batch, keys.height_key(keys.APP_HASH, 0), app_hash)
        for state_key, value in sorted((state_writes or {}).items()):
            rules.check_key("state", state_key)
            if value is not None:
                self._state_keys.add_all((state_key,))
                _put(batch, keys.STATE + state_key, value)
        self._write(batch, "set_genesis")
        self._genesis = genesis_hash
        log.info("genesis %s written to %s", genesis_hash.hex(), self._path)

    def consensus_write(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Atomic and synced: durable when this returns."""
        self._require_open()
        rules.check_consensus_records(records)
        if not records:
            return
        batch = self._db.write_batch(sync=True)
        for key, value in records:
            if value is None:
                batch.delete(keys.CONSENSUS + key)
            else:
                _put(batch, keys.CONSENSUS + key, value)
        self._write(batch, "consensus_write")

    def close(self) -> None:
        """Idempotent. Every later call raises StorageError."""
        if self._db is None:
            return
        db, self._db = self._db, None
        db.close()
        log.info("closed chain store %s", self._path)

    # -- helpers -------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._db is None:
            raise StorageError(f"chain store {self._path} is closed")

    def _get_at(self, namespace: bytes, height: int) -> bytes | None:
        self._require_open()
        if not 0 <= height <= keys.height_max:
            return None
        return self._get(keys.height_key(namespace, height))

    def _get(self, key: bytes) -> bytes | None:
        db = self._db
        if db is None:
            self._require_open()  # raises
        return _read(db, key)

    def _write(self, batch: Any, what: str) -> None:
        try:
            with _translated(f"{what} on {self._path}"):
                batch.write()
        except StorageError as error:
            log.error("%s", error)
            raise


class LevelDbStateSnapshot:
    """Service state at one committed height (`height`), unchanged by later commits.
    Reads are checked as the store's are; `close` (or leaving a `with`) releases the
    snapshot, which otherwise pins old versions of the keys in LevelDB."""

    def __init__(self, snapshot: Any, state_keys: KeyFilter) -> None:
        self._snapshot: Any = snapshot
        self._state_keys = state_keys  # keys never held then are not held now either
        raw = _read(snapshot, keys.META_HEIGHT)
        if raw is None:
            raise CorruptionError("the committed height record is missing")
        self.height = _decode(keys.decode_height, raw, "committed height")

    def __enter__(self) -> LevelDbStateSnapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, key: bytes) -> bytes | None:
        rules.check_key("state", key)
        if type(key) is bytes and not self._state_keys.may_hold(key):
            return None
        return _read(self._open(), keys.STATE + key)

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        rules.check_scan(prefix, start_after, limit)
        return _state_page(self._open(), prefix, start_after, limit)

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None

    def _open(self) -> Any:
        if self._snapshot is None:
            raise StorageError("state snapshot is closed")
        return self._snapshot


def _read(reader: Any, key: bytes) -> bytes | None:
    """One checked read from the database or a snapshot of it (plyvel gives both `get`)."""
    try:
        stored = reader.get(key, verify_checksums=True)
    except plyvel.CorruptionError as error:
        raise CorruptionError(
            f"LevelDB corruption reading {keys.describe(key)}: {error_text(error)}"
        ) from error
    except plyvel.Error as error:
        raise StorageError(f"cannot read {keys.describe(key)}: {error_text(error)}") from error
    return None if stored is None else open_value(key, stored)


def _state_page(
    reader: Any, prefix: bytes, start_after: bytes | None, limit: int
) -> Iterator[tuple[bytes, bytes]]:
    """A checked page of state keys (see `state_scan`) from the database or a snapshot."""
    start = keys.STATE + prefix
    include_start = True
    if start_after is not None and keys.STATE + start_after >= start:
        start, include_start = keys.STATE + start_after, False
    stop = keys.prefix_upper_bound(keys.STATE + prefix)
    page: list[tuple[bytes, bytes]] = []
    if limit == 0:
        return iter(page)
    with (
        _translated("scanning service state"),
        reader.iterator(
            start=start, stop=stop, include_start=include_start, verify_checksums=True
        ) as iterator,
    ):
        for key, stored in iterator:
            page.append((key[1:], open_value(key, stored)))
            if len(page) >= limit:
                break
    return iter(page)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """plyvel's exceptions become ours, so callers handle one family of errors."""
    try:
        yield
    except plyvel.CorruptionError as error:
        raise CorruptionError(f"LevelDB corruption while {what}: {error_text(error)}") from error
    except plyvel.Error as error:
        raise StorageError(f"LevelDB failed while {what}: {error_text(error)}") from error


def _put(batch: Any, key: bytes, payload: bytes) -> None:
    batch.put(key, seal_value(key, payload))


def _load_state_keys(db: Any, path: Path) -> KeyFilter:
    """The filter of every service-state key the store holds (keys only, not cached)."""
    state_keys = KeyFilter()
    prefix_bytes = len(keys.STATE)
    with (
        _translated(f"loading the state keys of {path}"),
        db.iterator(prefix=keys.STATE, include_value=False, fill_cache=False) as iterator,
    ):
        while state_keys.on:
            chunk = [key[prefix_bytes:] for key in itertools.islice(iterator, _KEYS_PER_LOAD)]
            if not chunk:
                return state_keys
            state_keys.add_all(chunk)
    log.warning("%s holds too many state keys for the key filter: not used", path)
    return state_keys


def _put_block(batch: Any, commit: BlockCommit, state_keys: KeyFilter) -> None:
    """Everything one block changes, in one batch; the hot loops (tx index, state writes)
    are inlined: seal_value's bytes, without a Python call per record."""
    height_bytes = keys.encode_height(commit.height)
    for namespace, payload in (
        (keys.BLOCK, commit.block),
        (keys.SEAL, commit.seal),
        (keys.RESULTS, commit.results),
        (keys.APP_HASH, commit.app_hash),
        (keys.RESULTS_ROOT, commit.results_root),
        (keys.BLOCK_HASH, commit.block_hash),
    ):
        _put(batch, namespace + height_bytes, payload)
    _put(batch, keys.HEIGHT_OF + commit.block_hash, height_bytes)
    _put_tx_index(batch, commit)
    _put_state_writes(batch, commit.state_writes, state_keys)
    _put(batch, keys.META_HEIGHT, height_bytes)


def _put_tx_index(batch: Any, commit: BlockCommit) -> None:
    """tx hash -> (height, index), sealed as `seal_value` does (checksum.py)."""
    assert len(commit.tx_hashes) <= keys.tx_index_max
    put = batch.put
    crc32 = zlib.crc32
    prefix = keys.TX_LOCATION
    prefix_crc = crc32(prefix)  # crc32(prefix + h) == crc32(h, crc32(prefix))
    location = keys.location_packer(commit.height)
    skipped = commit.unindexed_txs
    for index, tx_hash in enumerate(commit.tx_hashes):
        if skipped and index in skipped:
            continue
        value = location(index)
        crc = crc32(value, crc32(tx_hash, prefix_crc))
        put(prefix + tx_hash, value + crc.to_bytes(CHECKSUM_BYTES, "big"))


def _put_state_writes(
    batch: Any, writes: Mapping[bytes, bytes | None], state_keys: KeyFilter
) -> None:
    """Each write sealed as `seal_value` does; the keys given a value join the key filter
    before the batch is written (a deleted key needs not: it reads as None either way)."""
    put = batch.put
    crc32 = zlib.crc32
    prefix = keys.STATE
    prefix_crc = crc32(prefix)
    for state_key, value in writes.items():
        key = prefix + state_key
        if value is None:
            batch.delete(key)
        else:
            crc = crc32(value, crc32(state_key, prefix_crc))
            put(key, value + crc.to_bytes(CHECKSUM_BYTES, "big"))
    state_keys.add_all([key for key, value in writes.items() if value is not None])


def _decode(decoder: Callable[[bytes], _T], raw: bytes, what: str) -> _T:
    try:
        return decoder(raw)
    except ValueError as error:
        raise CorruptionError(f"bad {what} record: {error}") from error
