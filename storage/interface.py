"""The chain store contract, shared by the LevelDB store and the in-memory twin.

One `commit_block` call writes everything a committed block changes — block, seal, tx
index, results, app hash, service-state writes and the new height — as one atomic, synced
batch. After a crash the store holds every block whose `commit_block` returned, plus
possibly the one in flight (all of it or none of it). A damaged disk (a torn LevelDB log)
can lose the newest blocks; the store then opens at a lower, consistent height and the node
fetches the rest from peers.
Every value read back is checked against a checksum written with it; a mismatch raises
`CorruptionError`, never returns altered bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class StorageError(Exception):
    """The store cannot do what was asked (closed, wrong height, locked by another process)."""


class CorruptionError(StorageError):
    """A record failed its checksum or the store's own metadata is inconsistent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockCommit:
    height: int  # must be committed_height() + 1
    block_hash: bytes
    block: bytes  # encoded protocol.block.Block
    seal: bytes  # encoded protocol.seal.Seal
    tx_hashes: Sequence[bytes]  # in block order; indexed as tx hash -> (height, index)
    results: bytes  # encoded protocol.results list
    results_root: bytes
    app_hash: bytes
    state_writes: Mapping[bytes, bytes | None]  # service state; None deletes
    # Indices of txs the tx index must not point at: a second inclusion of a tx already
    # indexed (it executed as a replay), so `tx <hash>` keeps naming the copy that executed.
    unindexed_txs: frozenset[int] = frozenset()


class StateSnapshot(Protocol):
    """The committed service state at one height, unchanged by later commits: a reader of
    several keys (a query) sees one height, never part of a block committed meanwhile.
    A `services.interface.StateView`; release it with `close` or a `with` block."""

    height: int

    def get(self, key: bytes) -> bytes | None: ...

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> StateSnapshot: ...

    def __exit__(self, *exc_info: object) -> None: ...


class ChainStore(Protocol):
    def committed_height(self) -> int: ...

    def commit_block(self, commit: BlockCommit) -> None: ...

    def block(self, height: int) -> bytes | None: ...

    def seal(self, height: int) -> bytes | None: ...

    def results(self, height: int) -> bytes | None: ...

    def app_hash(self, height: int) -> bytes | None:
        """App hash after executing `height`; height 0 gives the genesis app hash."""
        ...

    def results_root(self, height: int) -> bytes | None: ...

    def block_hash(self, height: int) -> bytes | None: ...

    def height_of(self, block_hash: bytes) -> int | None: ...

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None: ...

    def state_get(self, key: bytes) -> bytes | None: ...

    def state_may_hold(self, key: bytes) -> bool:
        """False only if the store certainly holds no value for `key`, answered without a
        read (LevelDB: its state-key filter); True when it may. A cache of reads need not
        remember a False: asking again costs less than remembering."""
        ...

    def state_scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix` in ascending order, after `start_after`, at most `limit`."""
        ...

    def state_snapshot(self) -> StateSnapshot:
        """The committed state and its height as they are now (see StateSnapshot)."""
        ...

    def set_genesis(
        self,
        *,
        genesis_hash: bytes,
        app_hash: bytes,
        state_writes: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Once, on an empty store, in one synced batch with the genesis service state
        (agencies, roles); `app_hash` is the app hash at height 0."""
        ...

    def genesis_hash(self) -> bytes | None: ...

    def consensus_load(self) -> dict[bytes, bytes]: ...

    def consensus_write(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Atomic and synced: durable when this returns."""
        ...

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...
