"""Callers of broadcast_tx_commit waiting for their tx to be executed and durable.

Bounded: at most `waiters_max` waiting futures in total; past that a new waiter is refused
at once (the RPC layer turns it into an error) instead of growing memory.
"""

from __future__ import annotations

import asyncio

from node.api import CommittedTx


class TooManyWaiters(RuntimeError):
    pass


class CommitWaiters:
    def __init__(self, *, waiters_max: int) -> None:
        self._waiters: dict[bytes, list[asyncio.Future[CommittedTx]]] = {}
        self._count = 0
        self._waiters_max = waiters_max

    def __len__(self) -> int:
        return self._count

    async def wait(self, tx_hash: bytes, *, timeout_s: float) -> CommittedTx | None:
        if self._count >= self._waiters_max:
            raise TooManyWaiters(f"{self._count} callers already wait for commits")
        future: asyncio.Future[CommittedTx] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        self._count += 1
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._forget(tx_hash, future)

    def _forget(self, tx_hash: bytes, future: asyncio.Future[CommittedTx]) -> None:
        futures = self._waiters.get(tx_hash)
        if futures is None or future not in futures:
            return
        futures.remove(future)
        self._count -= 1
        if not futures:
            del self._waiters[tx_hash]

    def resolve(self, committed: CommittedTx) -> None:
        for future in self._waiters.get(committed.tx_hash, ()):
            if not future.done():
                future.set_result(committed)
