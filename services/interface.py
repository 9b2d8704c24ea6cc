"""The Application interface between the node and the public services.

The node calls `check_tx` when a tx enters the mempool (against committed state), and
`execute_block` for each committed block, strictly in height order. Execution is a pure
function of (committed state, block): it returns results and state writes; the node writes
them, with the block, in one synced batch. `query` reads committed state by path.

Determinism rules (docs/SERVICES.md): no clock (use `BlockInfo.time_ms`), no randomness,
no floats, and never iterate a set or dict whose order depends on hashing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from protocol.results import TxResult
from protocol.tx import Tx


class StateView(Protocol):
    """Read access to committed service state (keys and values are bytes)."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan(
        self, prefix: bytes, *, start_after: bytes | None = None, limit: int
    ) -> Iterator[tuple[bytes, bytes]]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockInfo:
    chain_id: str
    height: int
    time_ms: int
    proposer: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockOutcome:
    results: tuple[TxResult, ...]  # one per tx, in block order
    writes: Mapping[bytes, bytes | None]  # state writes of the whole block; None deletes
    app_hash: bytes
    results_root: bytes
    events: tuple[TxEvent, ...] = ()


class TxEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Emitted to WebSocket subscribers and indexed for tx_search. A frozen msgspec Struct,
    not a dataclass, like TxContext: one is built per successful tx, ~7x cheaper."""

    tx_index: int
    kind: str
    attributes: tuple[tuple[str, str], ...] = ()


class QueryError(Exception):
    """A query that cannot be answered: unknown path or bad parameters (RPC: invalid params)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryResult:
    found: bool
    value: Any = None  # JSON-serialisable
    height: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


class Application(Protocol):
    def check_tx(self, tx: Tx, state: StateView, *, next_height: int) -> TxResult:
        """Cheap stateful admission check for the mempool (the signature is already
        verified). code 0 admits; anything else is refused with that code."""
        ...

    def execute_block(
        self,
        info: BlockInfo,
        txs: Sequence[Tx],
        state: StateView,
        *,
        prev_app_hash: bytes,
    ) -> BlockOutcome: ...

    def query(self, path: str, params: Mapping[str, str], state: StateView) -> QueryResult: ...

    def genesis_app_hash(self) -> bytes: ...

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        """State written once when the chain starts (agencies, roles from genesis)."""
        ...
