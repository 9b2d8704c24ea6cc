"""A Bloom filter of the service-state keys a LevelDB store holds, so that reading a key the
store never held costs no LevelDB read.

Why: most state reads of a tx are misses (its replay key, a new document's key), and a
LevelDB miss is not cheap. It searches the memtable (a skiplist of up to 32 MiB) and one
table per level. Worse, each such read charges a "seek" to the first table it searched.
LevelDB compacts a table once it has been charged `size / 16 KiB` seeks, so misses alone
kept the compaction thread busy: a synthetic notary load ran ~9 us of compaction CPU per tx
without those reads and ~17 us with them (docs/STORAGE.md). The filter answers "never
held" from memory, in two bit tests.

Rules that keep it exact:

- A key the filter does not hold was never written by this process or held when the store
  opened, so LevelDB would answer None as well. Every key with a value is added before the
  batch that writes it (a failed write leaves an extra key, which costs only a read).
  Deleted keys need not be added: reading them gives None either way.
- Positions come from Python's `hash()` of the key's bytes: it is randomised per process,
  so the filter is never stored; every open rebuilds it by scanning the state keys.
- One thread adds (the store's single writer); any thread may look up. A lookup reads each
  byte once, and an add sets bits with whole-byte stores, so a reader sees a byte before or
  after an add, never a torn one.
- Bounded: the bit array is fixed. Its false-positive rate grows with the keys it holds,
  so past `keys_max` distinct keys it turns itself off and every read goes to LevelDB as
  before (restarting the node does not help: the store holds at least as many keys).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable

# 2^28 bits = 32 MiB, mapped lazily (a small store touches a few pages), in blocks of one
# 64-byte cache line: a key's two bits lie in one block, so an add or a lookup touches one
# cache line, not two (~15% faster at this size). With n keys the false-positive rate is
# about (1 - e^(-2n/2^28))^2: ~0.1% at 4 million keys, ~1.5% at `KEYS_MAX`.
BITS_LOG2 = 28
KEYS_MAX = 1 << (BITS_LOG2 - 4)  # 16,777,216 distinct keys, ~5.6 million notary anchors
_BLOCK_BYTES_LOG2 = 6  # 64 bytes, 512 bits
_IN_BLOCK_MASK = (1 << (_BLOCK_BYTES_LOG2 + 3)) - 1
# A 64-bit hash (sys.hash_info.width on the platforms the node runs on) is split into the
# block number (low bits) and two bit numbers within the block (the top 18 bits).
_FIRST_SHIFT = 64 - 2 * (_BLOCK_BYTES_LOG2 + 3)
_SECOND_SHIFT = 64 - (_BLOCK_BYTES_LOG2 + 3)


class KeyFilter:
    """Answers `may_hold(key)`: False means the key was never added."""

    __slots__ = ("_bits", "_block_mask", "_keys", "_keys_max")

    def __init__(self, *, bits_log2: int = BITS_LOG2, keys_max: int = KEYS_MAX) -> None:
        blocks_log2 = bits_log2 - 3 - _BLOCK_BYTES_LOG2
        assert 0 <= blocks_log2 <= _FIRST_SHIFT, bits_log2  # block numbers from unused bits
        assert keys_max >= 0
        self._block_mask = (1 << blocks_log2) - 1
        self._bits: mmap.mmap | None = mmap.mmap(-1, 1 << (bits_log2 - 3))
        self._keys = 0  # distinct keys added (a key whose bits were both set is not counted)
        self._keys_max = keys_max

    @property
    def on(self) -> bool:
        return self._bits is not None

    def may_hold(self, key: bytes) -> bool:
        """False only for a key never added (callers pass exact `bytes`: a subclass could
        hash differently). True when in doubt, and always once the filter is off."""
        bits = self._bits
        if bits is None:
            return True
        key_hash = hash(key)
        block = (key_hash & self._block_mask) << _BLOCK_BYTES_LOG2
        bit = (key_hash >> _FIRST_SHIFT) & _IN_BLOCK_MASK
        if not bits[block + (bit >> 3)] & (1 << (bit & 7)):
            return False
        bit = (key_hash >> _SECOND_SHIFT) & _IN_BLOCK_MASK
        return bool(bits[block + (bit >> 3)] & (1 << (bit & 7)))

    def add_all(self, keys: Iterable[bytes]) -> None:
        """Remember every key. Only the store's writer thread calls this. One call per
        batch: the loop keeps its state in locals (a call per key cost twice as much)."""
        bits = self._bits
        if bits is None:
            return
        block_mask = self._block_mask
        added = 0
        for key in keys:
            key_hash = hash(key) if type(key) is bytes else hash(bytes(key))
            block = (key_hash & block_mask) << _BLOCK_BYTES_LOG2
            first = (key_hash >> _FIRST_SHIFT) & _IN_BLOCK_MASK
            second = (key_hash >> _SECOND_SHIFT) & _IN_BLOCK_MASK
            first_index, first_bit = block + (first >> 3), 1 << (first & 7)
            second_index, second_bit = block + (second >> 3), 1 << (second & 7)
            byte = bits[first_index]
            if byte & first_bit and bits[second_index] & second_bit:
                continue  # held already (or a false positive): not a new key
            bits[first_index] = byte | first_bit
            bits[second_index] |= second_bit  # after the first store: they may share a byte
            added += 1
        self._keys += added
        if self._keys > self._keys_max:
            # Dropped, not closed: a reader in another thread may still hold the map.
            self._bits = None
