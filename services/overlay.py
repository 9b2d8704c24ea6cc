"""A write overlay over a StateView: reads see the overlay's own writes first.

Block execution stacks two of these: one per block over committed state, and one per tx over
the block's overlay. A tx that succeeds merges its writes into the block overlay, so later
txs in the same block see them; a tx that fails is simply dropped with its overlay. The block
overlay's writes are what the node persists, and what the app hash commits to.

`scan` merges the overlay's writes with the parent's keys in ascending byte order, so a
service sees one consistent ordered keyspace whatever has been written in this block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from services.interface import StateView

# Parent rows fetched per page while merging a scan; deleted keys in the overlay can make a
# page yield fewer rows than asked, so scanning pages on until `limit` rows are produced.
_SCAN_PAGE_ROWS = 64
_UNWRITTEN = object()


class Overlay:
    """A StateView plus buffered writes (None deletes). Not thread-safe; one per tx/block."""

    __slots__ = ("_parent", "_writes")

    def __init__(self, parent: StateView) -> None:
        self._parent = parent
        self._writes: dict[bytes, bytes | None] = {}

    @property
    def writes(self) -> Mapping[bytes, bytes | None]:
        return self._writes

    def get(self, key: bytes) -> bytes | None:
        value = self._writes.get(key, _UNWRITTEN)  # one lookup: None is a delete here
        if value is _UNWRITTEN:
            return self._parent.get(key)
        assert value is None or isinstance(value, bytes)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        assert isinstance(key, bytes), type(key)
        assert isinstance(value, bytes), type(value)
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        assert isinstance(key, bytes)
        self._writes[key] = None

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        """Take over a child overlay's writes (the child's tx succeeded)."""
        self._writes.update(writes)

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix`, ascending, strictly after `start_after`, at most `limit`."""
        assert limit >= 0
        if limit == 0:
            return
        own = sorted(
            key
            for key in self._writes
            if key.startswith(prefix) and (start_after is None or key > start_after)
        )
        rows = _merge(own, self._writes, self._parent_rows(prefix, start_after))
        for produced, row in enumerate(rows, start=1):
            yield row
            if produced >= limit:
                return

    def _parent_rows(
        self, prefix: bytes, start_after: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        cursor = start_after
        while True:
            page = list(self._parent.scan(prefix, start_after=cursor, limit=_SCAN_PAGE_ROWS))
            yield from page
            if len(page) < _SCAN_PAGE_ROWS:
                return
            cursor = page[-1][0]


def _merge(
    own_keys: list[bytes],
    own: Mapping[bytes, bytes | None],
    parent_rows: Iterator[tuple[bytes, bytes]],
) -> Iterator[tuple[bytes, bytes]]:
    """Merge two ascending streams; the overlay wins on equal keys and None hides a key."""
    index = 0
    for parent_key, parent_value in parent_rows:
        while index < len(own_keys) and own_keys[index] < parent_key:
            value = own[own_keys[index]]
            if value is not None:
                yield own_keys[index], value
            index += 1
        if parent_key in own:
            continue  # overwritten or deleted in this overlay; emitted (or hidden) above/below
        yield parent_key, parent_value
    for key in own_keys[index:]:
        value = own[key]
        if value is not None:
            yield key, value
