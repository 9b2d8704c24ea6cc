"""The in-memory twin of the LevelDB chain store, for tests and the simulator.

Same contract, same errors (storage/rules.py holds the shared checks). Its "disk" is a
`MemoryDisk` object that outlives any one store, which is how a simulated node crashes and
restarts:

    disk = MemoryDisk()
    store = MemoryChainStore(disk)      # like LevelDbChainStore(path)
    ...
    store.crash()                       # the process dies: the handle is gone
    store = MemoryChainStore(disk)      # restart: reopen the same disk

Crash semantics: the disk holds only what was synced. Every write this contract allows
(`commit_block`, `set_genesis`, `consensus_write`) is synced by contract before it returns,
so a crash keeps everything whose call returned and nothing else: there is no unsynced tail
to lose. A call that raised wrote nothing (each applies all of its changes at once, after its
checks). Values are not checksummed here: nothing outside this process can alter them.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from storage import keys, rules
from storage.interface import BlockCommit, StorageError

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class _BlockRecord:
    block_hash: bytes
    block: bytes
    seal: bytes
    results: bytes
    results_root: bytes
    app_hash: bytes


@dataclass(slots=True)
class MemoryDisk:
    """What survives a crash of a MemoryChainStore. Open by at most one store at a time."""

    blocks: dict[int, _BlockRecord] = field(default_factory=dict)
    height_of: dict[bytes, int] = field(default_factory=dict)
    tx_locations: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    state: dict[bytes, bytes] = field(default_factory=dict)
    state_keys_sorted: list[bytes] = field(default_factory=list)
    consensus: dict[bytes, bytes] = field(default_factory=dict)
    committed_height: int = 0
    genesis: tuple[bytes, bytes] | None = None  # (genesis hash, genesis app hash)
    locked: bool = False
    # Fault injection (RELIABILITY.md D6, disk full): while set, every write raises
    # StorageError with this text and changes nothing, as a failed LevelDB batch would.
    write_failure: str | None = None

    def state_bytes(self) -> int:
        return sum(len(key) + len(value) for key, value in self.state.items())


class MemoryChainStore:
    """ChainStore over a MemoryDisk; see the module docstring for crash semantics."""

    def __init__(self, disk: MemoryDisk | None = None) -> None:
        disk = MemoryDisk() if disk is None else disk
        if disk.locked:
            raise StorageError("memory store is locked by another process (already open)")
        disk.locked = True
        self._disk: MemoryDisk | None = disk

    @property
    def disk(self) -> MemoryDisk:
        return self._open_disk()

    # -- reads ---------------------------------------------------------------------------

    def committed_height(self) -> int:
        return self._open_disk().committed_height

    def block(self, height: int) -> bytes | None:
        record = self._record(height)
        return None if record is None else record.block

    def seal(self, height: int) -> bytes | None:
        record = self._record(height)
        return None if record is None else record.seal

    def results(self, height: int) -> bytes | None:
        record = self._record(height)
        return None if record is None else record.results

    def app_hash(self, height: int) -> bytes | None:
        disk = self._open_disk()
        if height == 0:
            return None if disk.genesis is None else disk.genesis[1]
        record = self._record(height)
        return None if record is None else record.app_hash

    def results_root(self, height: int) -> bytes | None:
        record = self._record(height)
        return None if record is None else record.results_root

    def block_hash(self, height: int) -> bytes | None:
        record = self._record(height)
        return None if record is None else record.block_hash

    def height_of(self, block_hash: bytes) -> int | None:
        return self._open_disk().height_of.get(block_hash)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._open_disk().tx_locations.get(tx_hash)

    def state_get(self, key: bytes) -> bytes | None:
        rules.check_key("state", key)
        return self._open_disk().state.get(key)

    def state_may_hold(self, key: bytes) -> bool:
        """Always True: a cache of reads over this store remembers misses, as it would over
        a store that has to read to know (the simulator and tests exercise that cache)."""
        self._open_disk()
        return True

    def state_scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix` in ascending order, after `start_after`, at most `limit`."""
        rules.check_scan(prefix, start_after, limit)
        disk = self._open_disk()
        return _state_page(disk.state, disk.state_keys_sorted, prefix, start_after, limit)

    def state_snapshot(self) -> MemoryStateSnapshot:
        """The committed state as it is now (a copy: tests and the simulator hold little)."""
        disk = self._open_disk()
        return MemoryStateSnapshot(
            height=disk.committed_height,
            state=dict(disk.state),
            keys_sorted=list(disk.state_keys_sorted),
        )

    def genesis_hash(self) -> bytes | None:
        genesis = self._open_disk().genesis
        return None if genesis is None else genesis[0]

    def consensus_load(self) -> dict[bytes, bytes]:
        return dict(self._open_disk().consensus)

    def size_bytes(self) -> int:
        """An estimate of what the same data would take on disk; no LevelDB overheads."""
        disk = self._open_disk()
        block_bytes = sum(
            len(record.block) + len(record.seal) + len(record.results)
            for record in disk.blocks.values()
        )
        return block_bytes + disk.state_bytes() + 44 * len(disk.tx_locations)

    # -- writes --------------------------------------------------------------------------

    def commit_block(self, commit: BlockCommit) -> None:
        disk = self._writable_disk()
        rules.check_commit(
            commit, committed_height=disk.committed_height, has_genesis=disk.genesis is not None
        )
        if commit.block_hash in disk.height_of:
            raise StorageError(f"block hash {commit.block_hash.hex()} is already stored")
        disk.blocks[commit.height] = _BlockRecord(
            block_hash=commit.block_hash,
            block=commit.block,
            seal=commit.seal,
            results=commit.results,
            results_root=commit.results_root,
            app_hash=commit.app_hash,
        )
        disk.height_of[commit.block_hash] = commit.height
        for index, tx_hash in enumerate(commit.tx_hashes):
            if index in commit.unindexed_txs:
                continue
            disk.tx_locations[tx_hash] = (commit.height, index)
        for key, value in commit.state_writes.items():
            _apply_state_write(disk, key, value)
        disk.committed_height = commit.height

    def set_genesis(
        self,
        *,
        genesis_hash: bytes,
        app_hash: bytes,
        state_writes: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        disk = self._writable_disk()
        if rules.check_genesis(genesis_hash=genesis_hash, app_hash=app_hash, stored=disk.genesis):
            for state_key, value in sorted((state_writes or {}).items()):
                rules.check_key("state", state_key)
                _apply_state_write(disk, state_key, value)
            disk.genesis = (genesis_hash, app_hash)

    def consensus_write(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Atomic and synced: durable when this returns."""
        disk = self._writable_disk()
        rules.check_consensus_records(records)
        for key, value in records:
            if value is None:
                disk.consensus.pop(key, None)
            else:
                disk.consensus[key] = value

    def close(self) -> None:
        """Idempotent. Every later call raises StorageError; the disk may be reopened."""
        if self._disk is None:
            return
        self._disk.locked = False
        self._disk = None

    def crash(self) -> None:
        """The process dies. Everything written was synced, so this is close() by contract;
        it exists so that a simulator says what it means."""
        self.close()

    # -- helpers -------------------------------------------------------------------------

    def _writable_disk(self) -> MemoryDisk:
        disk = self._open_disk()
        if disk.write_failure is not None:
            raise StorageError(f"write failed: {disk.write_failure}")
        return disk

    def _open_disk(self) -> MemoryDisk:
        if self._disk is None:
            raise StorageError("memory chain store is closed")
        return self._disk

    def _record(self, height: int) -> _BlockRecord | None:
        disk = self._open_disk()
        if not 0 <= height <= keys.height_max:
            return None
        return disk.blocks.get(height)


class MemoryStateSnapshot:
    """Service state at one committed height (`height`), unchanged by later commits."""

    def __init__(self, *, height: int, state: dict[bytes, bytes], keys_sorted: list[bytes]) -> None:
        self.height = height
        self._state = state
        self._keys_sorted = keys_sorted
        self._closed = False

    def __enter__(self) -> MemoryStateSnapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, key: bytes) -> bytes | None:
        rules.check_key("state", key)
        self._require_open()
        return self._state.get(key)

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        rules.check_scan(prefix, start_after, limit)
        self._require_open()
        return _state_page(self._state, self._keys_sorted, prefix, start_after, limit)

    def close(self) -> None:
        self._closed = True

    def _require_open(self) -> None:
        if self._closed:
            raise StorageError("state snapshot is closed")


def _state_page(
    state: Mapping[bytes, bytes],
    ordered: Sequence[bytes],
    prefix: bytes,
    start_after: bytes | None,
    limit: int,
) -> Iterator[tuple[bytes, bytes]]:
    if start_after is not None and start_after >= prefix:
        position = bisect.bisect_right(ordered, start_after)
    else:
        position = bisect.bisect_left(ordered, prefix)
    page: list[tuple[bytes, bytes]] = []
    while position < len(ordered) and len(page) < limit:
        key = ordered[position]
        if not key.startswith(prefix):
            break
        page.append((key, state[key]))
        position += 1
    return iter(page)


def _apply_state_write(disk: MemoryDisk, key: bytes, value: bytes | None) -> None:
    """Keep the sorted key list in step with the dict, so scans need no sort."""
    present = key in disk.state
    if value is None:
        if present:
            del disk.state[key]
            position = bisect.bisect_left(disk.state_keys_sorted, key)
            assert disk.state_keys_sorted[position] == key
            del disk.state_keys_sorted[position]
        return
    if not present:
        bisect.insort(disk.state_keys_sorted, key)
    disk.state[key] = value
