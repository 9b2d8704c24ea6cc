"""Byzantine behaviour as engine wrappers that rewrite `Output` (STYLE §3.8 item 4): the
pure version of CometBFT's byzantine_test.go. The wrapped engine runs honestly; the wrapper
changes what leaves the node. These are engine-agnostic; PBFT-specific ones (equivocating
pre-prepares, double votes) live in byzantine_pbft.py.

A wrapper is built by a `ByzantineWrapper`, called at every (re)start of the node, so a
byzantine node stays byzantine across its own crashes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from consensus.sim.node import ByzantineWrapper, ChainParams
from consensus.types import Engine, EngineStatus, Envelope, Event, NodeId, Output
from protocol.block import Block, make_block
from protocol.sealed import SealedBlock

__all__ = [
    "ByzantineWrapper",
    "RewritingEngine",
    "conflicting_block",
    "double_voting",
    "equivocating",
    "forged_answer",
    "garbage",
    "halves",
    "silent",
    "split_broadcast",
]


class RewritingEngine:
    """Runs `inner` and passes every Output through `rewrite` before the node sees it."""

    def __init__(self, inner: Engine, rewrite: Callable[[Event, Output], Output]) -> None:
        self.inner = inner
        self._rewrite = rewrite

    def step(self, event: Event) -> Output:
        return self._rewrite(event, self.inner.step(event))

    def status(self) -> EngineStatus:
        return self.inner.status()


def conflicting_block(block: Block) -> Block:
    """Another valid block for the same height and parent: only the time differs."""
    header = block.header
    return make_block(
        chain_id=header.chain_id,
        height=header.height,
        prev_hash=header.prev_hash,
        time_ms=header.time_ms + 1,
        proposer=header.proposer,
        txs=block.txs,
        validators_hash=header.validators_hash,
        exec_height=header.exec_height,
        exec_app_hash=header.exec_app_hash,
        exec_results_root=header.exec_results_root,
    )


def forged_answer(blocks: tuple[SealedBlock, ...]) -> tuple[SealedBlock, ...]:
    """What a byzantine peer serves for a fetch: conflicting blocks carrying the real seals,
    which therefore do not verify. A node must check every seal and try another peer."""
    return tuple(SealedBlock(block=conflicting_block(s.block), seal=s.seal) for s in blocks)


def silent(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
    """Sends nothing at all, but keeps persisting and committing (a mute primary stays
    connected and keeps its slot: RELIABILITY B7)."""

    def drop_sends(event: Event, output: Output) -> Output:
        return Output(persist=output.persist, commit=output.commit, fetch=output.fetch)

    return RewritingEngine(engine, drop_sends)


def garbage(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
    """Besides its honest messages, sends seeded random bytes to every peer each time it
    sends anything: the edge must reject them (counted), never crash (RELIABILITY S8)."""
    rng = random.Random(f"garbage/{params.chain_id}/{node_id}")

    def add_garbage(event: Event, output: Output) -> Output:
        if not output.send:
            return output
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 96)))
        return Output(
            persist=output.persist,
            send=(*output.send, Envelope(None, junk)),
            commit=output.commit,
            fetch=output.fetch,
        )

    return RewritingEngine(engine, add_garbage)


def halves(params: ChainParams, node_id: NodeId) -> tuple[list[NodeId], list[NodeId]]:
    """The other validators split in two, in id order: who sees which side of a lie."""
    others = [NodeId(i) for i in range(params.validators.size) if i != node_id]
    middle = (len(others) + 1) // 2
    return others[:middle], others[middle:]


def split_broadcast(
    output: Output,
    *,
    first: list[NodeId],
    second: list[NodeId],
    mutate: Callable[[object], object | None],
) -> Output:
    """Equivocation: every broadcast that `mutate` can change goes unchanged to `first`
    and changed to `second`; other messages are left alone."""
    sends: list[Envelope] = []
    for envelope in output.send:
        changed = mutate(envelope.message) if envelope.to is None else None
        if changed is None:
            sends.append(envelope)
            continue
        sends.extend(Envelope(target, envelope.message) for target in first)
        sends.extend(Envelope(target, changed) for target in second)
    return Output(
        persist=output.persist, send=tuple(sends), commit=output.commit, fetch=output.fetch
    )


def equivocating(mutate: Callable[[object], object | None]) -> ByzantineWrapper:
    """A wrapper that splits every broadcast `mutate` can change between the two `halves`
    of the other validators (see split_broadcast)."""

    def wrap(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
        first, second = halves(params, node_id)

        def rewrite(event: Event, output: Output) -> Output:
            return split_broadcast(output, first=first, second=second, mutate=mutate)

        return RewritingEngine(engine, rewrite)

    return wrap


def double_voting(extra: Callable[[object], tuple[object, ...]]) -> ByzantineWrapper:
    """Besides every message it sends, also sends `extra(message)` to the same targets
    (e.g. a second, conflicting vote for the same slot)."""

    def wrap(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
        def rewrite(event: Event, output: Output) -> Output:
            sends = list(output.send)
            for envelope in output.send:
                sends.extend(Envelope(envelope.to, message) for message in extra(envelope.message))
            return Output(
                persist=output.persist, send=tuple(sends), commit=output.commit, fetch=output.fetch
            )

        return RewritingEngine(engine, rewrite)

    return wrap
