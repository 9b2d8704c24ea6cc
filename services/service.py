"""The contract between the router and one public service (notary now; issue 7's later).

A service declares the tx kinds it handles (each with its msgspec body type and the agency
role its signer must hold), its query paths, and the state it writes at genesis. The router
does everything common to all txs — chain id, expiry, replay, kind, body decoding, role —
so a service's `deliver` sees only a well-formed body from an authorised signer and decides
the rest from state. A service must be deterministic: no clock (use `ctx.time_ms`), no
randomness, no floats, no iteration over sets, and it may only write keys under its own
prefix (its `name` + "/"; the router asserts it), so no service can corrupt another's state.
Reading other prefixes is allowed (every service reads `agency/` for roles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from protocol.results import TxResult
from services.interface import QueryResult, StateView
from services.overlay import Overlay


@dataclass(frozen=True, slots=True, kw_only=True)
class KindSpec:
    """One tx kind: the body's msgspec type, and the role its signer needs (None: anyone)."""

    body_type: type[msgspec.Struct]
    role: str | None


class TxContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a service may know about the tx it executes, beyond the body. A frozen
    msgspec Struct, not a dataclass: one is built per executed tx, ~4x cheaper."""

    chain_id: str
    height: int
    time_ms: int
    tx_index: int
    tx_hash: bytes
    signer: bytes
    nonce: int
    kind: str


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A service's verdict on one tx. On a non-zero code the router discards the tx's
    writes; `attributes` become the tx's event (only for code 0). A Struct, like TxContext."""

    result: TxResult
    attributes: tuple[tuple[str, str], ...] = ()


class Service(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> Mapping[str, KindSpec]: ...

    @property
    def query_paths(self) -> tuple[str, ...]: ...

    def genesis_writes(self) -> Mapping[bytes, bytes | None]: ...

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery: ...

    def query(self, path: str, params: Mapping[str, str], state: StateView) -> QueryResult: ...
