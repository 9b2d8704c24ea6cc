"""The Raft log over blocks: entries above a compacted base, with the chain tip at each entry.

Indices are Raft's (1-based, contiguous); heights are the chain's. A block entry at index i
holds the block of height `height_at(i)`; a no-op holds no block and `height_at(i)` is the
height of the last block before it. `tip_hash_at(i)` is the hash of that block, so a new
block proposed after index i links to it.

The base is the last compacted entry (index, term, height, block hash): everything at or
below it is committed and lives in the node's chain store, not here (§7). Index 0 / term 0
/ height 0 / zero hash is the empty log.

Invariants (`check_invariants`): block heights increase by one along block entries, each
block links to the tip before it, terms never decrease (Figure 3, Log Matching relies on
it), and the parallel arrays have one element per entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.raft.messages import Entry
from protocol.crypto import HASH_BYTES, ZERO_HASH


@dataclass(frozen=True, slots=True, kw_only=True)
class LogBase:
    index: int
    term: int
    height: int
    block_hash: bytes

    def __post_init__(self) -> None:
        assert self.index >= 0
        assert self.term >= 0
        assert self.height >= 0
        assert len(self.block_hash) == HASH_BYTES
        assert self.height <= self.index, "each block is one entry"


EMPTY_BASE = LogBase(index=0, term=0, height=0, block_hash=ZERO_HASH)


class RaftLog:
    def __init__(self, base: LogBase = EMPTY_BASE, entries: Sequence[Entry] = ()) -> None:
        self.base = base
        self._entries: list[Entry] = []
        self._heights: list[int] = []
        self._tips: list[bytes] = []
        self._sizes: list[int] = []
        for entry in entries:
            self.append(entry)

    # --- reading ---------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self.base.index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.base.term

    @property
    def last_height(self) -> int:
        return self._heights[-1] if self._heights else self.base.height

    @property
    def tip_hash(self) -> bytes:
        return self._tips[-1] if self._tips else self.base.block_hash

    def has(self, index: int) -> bool:
        """True for the base and every entry above it."""
        return self.base.index <= index <= self.last_index

    def term_at(self, index: int) -> int | None:
        """The entry's term; the base's term at the base; None outside the log."""
        if index == self.base.index:
            return self.base.term
        if not self.base.index < index <= self.last_index:
            return None
        return self._entries[index - self.base.index - 1].term

    def entry(self, index: int) -> Entry:
        assert self.base.index < index <= self.last_index, f"no entry {index}"
        return self._entries[index - self.base.index - 1]

    def height_at(self, index: int) -> int:
        if index == self.base.index:
            return self.base.height
        assert self.base.index < index <= self.last_index, f"no entry {index}"
        return self._heights[index - self.base.index - 1]

    def tip_hash_at(self, index: int) -> bytes:
        if index == self.base.index:
            return self.base.block_hash
        assert self.base.index < index <= self.last_index, f"no entry {index}"
        return self._tips[index - self.base.index - 1]

    def index_of_height(self, height: int) -> int | None:
        """The index of the block entry at `height` (the base if it is the base's)."""
        if height == self.base.height:
            return self.base.index
        if not self.base.height < height <= self.last_height:
            return None
        for offset in range(len(self._entries) - 1, -1, -1):
            if self._heights[offset] == height and self._entries[offset].block is not None:
                return self.base.index + 1 + offset
        raise AssertionError(f"height {height} in range but no block entry holds it")

    def first_index_of_term(self, index: int) -> int:
        """The first index of the run of entries with the term of `index` (fast backup)."""
        term = self.term_at(index)
        while index - 1 > self.base.index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def slice(self, first: int, *, count_max: int, bytes_max: int) -> tuple[Entry, ...]:
        """Entries from `first`: at least one if there is one, then within both bounds."""
        assert first > self.base.index
        chosen: list[Entry] = []
        total = 0
        for index in range(first, min(self.last_index, first + count_max - 1) + 1):
            size = self._sizes[index - self.base.index - 1]
            if chosen and total + size > bytes_max:
                break
            chosen.append(self.entry(index))
            total += size
        return tuple(chosen)

    def up_to_date(self, *, last_index: int, last_term: int) -> bool:
        """§5.4.1: is a log ending at (last_index, last_term) at least as up-to-date?"""
        if last_term != self.last_term:
            return last_term > self.last_term
        return last_index >= self.last_index

    # --- changing --------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        assert entry.term >= self.last_term, "terms never decrease along a log"
        height, tip = self.last_height, self.tip_hash
        size = 96
        if entry.block is not None:
            block = entry.block
            assert block.height == height + 1, f"block {block.height} after height {height}"
            assert block.header.prev_hash == tip, "block does not link to the log's tip"
            height, tip = block.height, block.hash()
            size += sum(len(raw) for raw in block.encoded_txs()) + 512
        self._entries.append(entry)
        self._heights.append(height)
        self._tips.append(tip)
        self._sizes.append(size)

    def truncate_after(self, index: int) -> list[int]:
        """Delete every entry above `index`; returns the deleted indices."""
        assert self.base.index <= index <= self.last_index
        removed = list(range(index + 1, self.last_index + 1))
        keep = index - self.base.index
        del self._entries[keep:], self._heights[keep:], self._tips[keep:], self._sizes[keep:]
        return removed

    def compact_to(self, index: int) -> list[int]:
        """Make entry `index` the new base; returns the dropped indices (base + 1 .. index)."""
        assert self.base.index < index <= self.last_index
        entry = self.entry(index)
        new_base = LogBase(
            index=index,
            term=entry.term,
            height=self.height_at(index),
            block_hash=self.tip_hash_at(index),
        )
        dropped = list(range(self.base.index + 1, index + 1))
        keep_from = index - self.base.index
        del self._entries[:keep_from], self._heights[:keep_from]
        del self._tips[:keep_from], self._sizes[:keep_from]
        self.base = new_base
        return dropped

    def reset(self, base: LogBase) -> list[int]:
        """Discard the whole log for a snapshot base (§7); returns the dropped indices."""
        dropped = list(range(self.base.index + 1, self.last_index + 1))
        self._entries.clear()
        self._heights.clear()
        self._tips.clear()
        self._sizes.clear()
        self.base = base
        return dropped

    def check_invariants(self, *, tail: int = 16) -> None:
        """Cheap enough for every step: lengths, and the last `tail` entries (each entry was
        also checked by `append` when it arrived)."""
        count = len(self._entries)
        assert len(self._heights) == len(self._tips) == len(self._sizes) == count
        first = max(0, count - tail)
        term = self._entries[first - 1].term if first else self.base.term
        height = self._heights[first - 1] if first else self.base.height
        for offset in range(first, count):
            entry = self._entries[offset]
            assert entry.term >= term, "terms never decrease along a log"
            term = entry.term
            expected = height + (entry.block is not None)
            assert self._heights[offset] == expected, "one block per block entry"
            height = expected
