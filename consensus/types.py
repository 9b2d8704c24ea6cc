"""The engine contract: `engine.step(event) -> Output`.

An engine (single-validator, PBFT, Raft) is a pure state machine. It never blocks, never
does I/O, never reads a clock and never draws from a global RNG: ticks come in as events,
randomness as an injected `random.Random`, expensive pure work (signing, verifying) as
plain function calls. The node's driver (node/driver.py) and the simulator
(consensus/sim/) are the only callers, and both honour the order below.

Events in:
    Tick            one logical tick; the driver decides its length in milliseconds.
    Received        a consensus message from validator `sender`, already decoded by the
                    engine's codec, size-checked, and signature-checked at the edge
                    (the codec's `verify`).
    Propose         a block the node built for the slot in `status().proposal_slot`.
    BlockExecuted   the node executed a committed block; carries the app hash and results
                    root (PBFT checkpoints and the execution-lag header check use them).
    Fetched         sealed blocks the driver fetched for a `FetchRequest`; the engine checks
                    every seal before using them.

Output, which the caller must honour *in this order*:
    1. persist  key/value writes to the engine's durable state; made durable (one synced
                batch) before anything in `send` leaves the node. A restarted engine is
                rebuilt from them and never votes against its earlier votes.
    2. send     envelopes to other validators (to=None: every other validator).
    3. commit   sealed blocks, strictly consecutive in height, to execute in order.
    4. fetch    requests to fetch committed blocks with their seals from peers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NewType, Protocol

import msgspec

from protocol.block import Block
from protocol.sealed import SealedBlock

NodeId = NewType("NodeId", int)  # the validator's index in the genesis validator set

# The events, outputs and statuses below are frozen msgspec Structs, not frozen dataclasses:
# a node builds several per engine step (an EngineStatus and its ProposalSlot after every
# step, a Received per message, an Output per step), and a Struct is built ~10x faster (a
# frozen dataclass sets each field through object.__setattr__). They hold no cycles, so the
# cyclic GC need not track them (gc=False). Replace a field with msgspec.structs.replace.


class Tick(msgspec.Struct, frozen=True, gc=False):
    """One logical tick."""


class Received(msgspec.Struct, frozen=True, gc=False):
    sender: NodeId
    message: object  # an engine-specific message type, produced by that engine's codec


class Propose(msgspec.Struct, frozen=True, gc=False):
    block: Block


class BlockExecuted(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    height: int
    block_hash: bytes
    app_hash: bytes
    results_root: bytes


class Fetched(msgspec.Struct, frozen=True, gc=False):
    sender: NodeId
    blocks: tuple[SealedBlock, ...]


Event = Tick | Received | Propose | BlockExecuted | Fetched


class Envelope(msgspec.Struct, frozen=True, gc=False):
    to: NodeId | None  # None: broadcast to every other validator
    message: object


class FetchRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    from_height: int
    to_height: int  # inclusive; the driver may return fewer
    peer: NodeId | None = None  # a hint; None lets the driver choose


class Output(msgspec.Struct, frozen=True, gc=False):
    """What the caller must do, in field order: persist, send, commit, fetch."""

    persist: tuple[tuple[bytes, bytes | None], ...] = ()
    send: tuple[Envelope, ...] = ()
    commit: tuple[SealedBlock, ...] = ()
    fetch: tuple[FetchRequest, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.persist or self.send or self.commit or self.fetch)

    def merge(self, other: Output) -> Output:
        if not other:
            return self
        if not self:
            return other
        return Output(
            persist=self.persist + other.persist,
            send=self.send + other.send,
            commit=self.commit + other.commit,
            fetch=self.fetch + other.fetch,
        )


NOTHING = Output()


class ProposalSlot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The engine would accept a `Propose` for this height, linked to `prev_hash`."""

    height: int
    prev_hash: bytes


class EngineStatus(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A read-only snapshot for RPC, metrics and the driver."""

    kind: str  # "solo", "pbft", "raft"
    node_id: NodeId
    committed_height: int
    round: int  # PBFT view or Raft term
    leader: NodeId | None  # PBFT primary or Raft leader, if known
    role: str  # "primary", "backup", "leader", "follower", "candidate", "view-change", ...
    proposal_slot: ProposalSlot | None
    in_flight: int = 0  # proposed but not committed
    extra: Mapping[str, int | str] = msgspec.field(default_factory=dict)


NO_EXTRA: Mapping[str, int | str] = MappingProxyType({})  # `extra` of a step status


class Engine(Protocol):
    """An engine may also offer `step_status() -> EngineStatus`: the same snapshot with
    `extra` left empty, which the driver reads after every step instead of `status()` (it
    needs round, leader, role and the proposal slot, and `extra`'s counters cost more than
    the rest). RPC and metrics read the full `status()`.

    An engine that keeps blocks across a restart also offers `undecided_blocks() ->
    tuple[Block, ...]`: those above its committed height that may still commit; the node
    holds their txs out of its own proposals (node/custody.py)."""

    def step(self, event: Event) -> Output: ...

    def status(self) -> EngineStatus: ...


class MessageCodec(Protocol):
    """How the node moves an engine's messages: bytes on the wire, checked at the edge."""

    def encode(self, message: object) -> bytes: ...

    def decode(self, data: bytes) -> object:
        """Raise protocol.encoding.DecodeError on anything but a canonical message."""
        ...

    def invalid(self, message: object, sender: NodeId) -> str | None:
        """Stateless checks and every signature in the message; None if acceptable."""
        ...

    def carried_blocks(self, message: object) -> tuple[Block, ...]:
        """The blocks inside `message`: the node verifies their txs' signatures (once per
        node, through its verified cache) before the engine sees the message."""
        ...
