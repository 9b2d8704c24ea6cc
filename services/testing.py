"""MemoryStateView: a dict-backed StateView for tests and the simulator; AppHarness: a
minimal block loop over an Application.

It behaves like the committed-state part of a ChainStore: `scan` yields keys in ascending
byte order, strictly after `start_after`, at most `limit`. `commit` applies a block's writes
the way the node would after a synced batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence

from protocol.results import TxResult
from protocol.tx import Tx
from services.interface import Application, BlockInfo, BlockOutcome, QueryResult


class MemoryStateView:
    def __init__(self, initial: Mapping[bytes, bytes | None] | None = None) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sorted_keys: list[bytes] = []
        if initial:
            self.commit(initial)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]:
        assert limit >= 0
        if start_after is None or start_after < prefix:
            position = bisect.bisect_left(self._sorted_keys, prefix)
        else:
            position = bisect.bisect_right(self._sorted_keys, start_after)
        keys = self._sorted_keys
        produced = 0
        while position < len(keys) and produced < limit and keys[position].startswith(prefix):
            key = keys[position]
            yield key, self._data[key]
            produced += 1
            position += 1

    def commit(self, writes: Mapping[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            present = key in self._data
            if value is None:
                if present:
                    del self._data[key]
                    self._sorted_keys.pop(bisect.bisect_left(self._sorted_keys, key))
            else:
                if not present:
                    bisect.insort(self._sorted_keys, key)
                self._data[key] = value

    def snapshot(self) -> dict[bytes, bytes]:
        return dict(self._data)

    def __len__(self) -> int:
        return len(self._data)


class AppHarness:
    """Drives an Application through consecutive blocks the way the node does: execute over
    committed state, then commit the writes and chain the app hash. For tests and sims."""

    def __init__(self, app: Application, *, chain_id: str, block_interval_ms: int = 1000) -> None:
        self.app = app
        self.chain_id = chain_id
        self.state = MemoryStateView(app.genesis_writes())
        self.app_hash = app.genesis_app_hash()
        self.height = 0
        self._block_interval_ms = block_interval_ms
        self._proposer = bytes(32)

    def run_block(self, txs: Sequence[Tx], *, time_ms: int | None = None) -> BlockOutcome:
        height = self.height + 1
        info = BlockInfo(
            chain_id=self.chain_id,
            height=height,
            time_ms=height * self._block_interval_ms if time_ms is None else time_ms,
            proposer=self._proposer,
        )
        outcome = self.app.execute_block(info, txs, self.state, prev_app_hash=self.app_hash)
        self.state.commit(outcome.writes)
        self.app_hash = outcome.app_hash
        self.height = height
        return outcome

    def check(self, tx: Tx) -> TxResult:
        return self.app.check_tx(tx, self.state, next_height=self.height + 1)

    def query(self, path: str, params: Mapping[str, str]) -> QueryResult:
        return self.app.query(path, params, self.state)
