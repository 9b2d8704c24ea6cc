"""A tiny in-test router for PBFT engines: no simulator, no asyncio.

Every Envelope goes through the real codec (encode, decode, invalid) and then to its target
engines, in FIFO order; commits are "executed" by a deterministic stand-in (app hash chains
block hashes) and fed back as BlockExecuted, as the node does; FetchRequests are answered
from another node's committed chain. Tests can drop messages with a filter, crash and
restart nodes from their persisted records, and inspect everything.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.outbox import Outbox
from consensus.pbft.codec import PbftCodec
from consensus.pbft.config import PbftConfig
from consensus.pbft.engine import PbftEngine
from consensus.types import (
    BlockExecuted,
    Envelope,
    Event,
    Fetched,
    FetchRequest,
    NodeId,
    Output,
    Propose,
    Received,
    Tick,
)
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH, SigningKey, sha256
from protocol.sealed import SealedBlock
from protocol.validators import ValidatorSet

CHAIN_ID = "pbft-test"

DropFilter = Callable[[int, int, object], bool]  # (source, target, message) -> drop?


def validator_keys(count: int) -> tuple[SigningKey, ...]:
    return tuple(SigningKey.from_secret(f"pbft-test/{i}".encode()) for i in range(count))


def validator_set(keys: tuple[SigningKey, ...]) -> ValidatorSet:
    return ValidatorSet(tuple(key.public_key for key in keys))


@dataclass(slots=True)
class NodeState:
    """What survives a crash: persisted records, the committed chain, executions."""

    durable: dict[bytes, bytes] = field(default_factory=dict)
    chain: list[SealedBlock] = field(default_factory=list)
    executed: list[BlockExecuted] = field(default_factory=list)

    @property
    def height(self) -> int:
        return len(self.chain)

    @property
    def last_hash(self) -> bytes:
        return self.chain[-1].block.hash() if self.chain else ZERO_HASH


def execute(state: NodeState, block: Block) -> BlockExecuted:
    previous = state.executed[-1].app_hash if state.executed else ZERO_HASH
    block_hash = block.hash()
    notice = BlockExecuted(
        height=block.height,
        block_hash=block_hash,
        app_hash=sha256(previous + block_hash),
        results_root=sha256(b"results" + block_hash),
    )
    state.executed.append(notice)
    return notice


class Router:
    def __init__(
        self,
        node_count: int,
        *,
        pipeline_depth: int = 2,
        checkpoint_interval: int = 4,
        window: int = 16,
        timeout_ticks: int = 20,
        backups_offer_slots: bool = False,
    ) -> None:
        self.keys = validator_keys(node_count)
        self.validators = validator_set(self.keys)
        self.configs = [
            PbftConfig(
                chain_id=CHAIN_ID,
                validators=self.validators,
                node_id=i,
                pipeline_depth=pipeline_depth,
                checkpoint_interval_seqs=checkpoint_interval,
                watermark_window_seqs=window,
                view_change_timeout_ticks=timeout_ticks,
                retransmit_ticks=5,
                fetch_retry_ticks=10,
                backups_offer_slots=backups_offer_slots,
            )
            for i in range(node_count)
        ]
        self.codec = PbftCodec(self.configs[0])
        self.states = [NodeState() for _ in range(node_count)]
        self.engines: list[PbftEngine | None] = [self._build(i) for i in range(node_count)]
        self.queue: deque[tuple[int, int, bytes]] = deque()  # (source, target, encoded)
        self.drop: DropFilter = lambda source, target, message: False
        self.delivered: list[tuple[int, int, object]] = []
        self.outputs: list[list[Output]] = [[] for _ in range(node_count)]
        self.block_counter = 0
        self.serve_fetches = True
        self.fetch_requests: list[tuple[int, FetchRequest]] = []

    def _build(self, index: int) -> PbftEngine:
        state = self.states[index]
        return PbftEngine(
            self.configs[index],
            key=self.keys[index],
            restored=dict(state.durable),
            committed_height=state.height,
            committed_hash=state.last_hash,
            executed=tuple(state.executed),
            rng=random.Random(index),
        )

    def engine(self, index: int) -> PbftEngine:
        engine = self.engines[index]
        assert engine is not None, f"node {index} is down"
        return engine

    # --- faults -------------------------------------------------------------------------------

    def crash(self, index: int) -> None:
        self.engines[index] = None

    def restart(self, index: int) -> None:
        assert self.engines[index] is None
        self.engines[index] = self._build(index)

    # --- stepping -----------------------------------------------------------------------------

    def step(self, index: int, event: Event) -> Output:
        """Step one engine and honour its Output (persist, send, commit+execute, fetch)."""
        output = self.engine(index).step(event)
        self.honour(index, output)
        return output

    def start_view_change(self, index: int, view: int) -> None:
        """Make node `index` start a view change now, as its timer would."""
        out = Outbox()
        self.engine(index).views.start(view, out)
        self.honour(index, out.freeze())

    def honour(self, index: int, output: Output) -> None:
        """Do what the Output asks, in contract order, as the node's driver does."""
        self.outputs[index].append(output)
        state = self.states[index]
        for key, value in output.persist:
            if value is None:
                state.durable.pop(key, None)
            else:
                state.durable[key] = value
        for envelope in output.send:
            self._send(index, envelope)
        notices = []
        for sealed in output.commit:
            assert sealed.height == state.height + 1
            assert sealed.invalid_for(self.validators) is None
            state.chain.append(sealed)
            notices.append(execute(state, sealed.block))
        for notice in notices:
            self.step(index, notice)
        for request in output.fetch:
            self.fetch_requests.append((index, request))
            if self.serve_fetches:
                self._serve_fetch(index, request.from_height, request.to_height, request.peer)

    def _send(self, source: int, envelope: Envelope) -> None:
        data = self.codec.encode(envelope.message)
        targets = (
            [envelope.to]
            if envelope.to is not None
            else [i for i in range(len(self.engines)) if i != source]
        )
        for target in targets:
            self.queue.append((source, target, data))

    def _serve_fetch(self, index: int, start: int, end: int, peer: int | None) -> None:
        candidates = [peer] if peer is not None else []
        candidates += [i for i in range(len(self.states)) if i != index]
        for candidate in candidates:
            chain = self.states[candidate].chain
            if self.engines[candidate] is not None and len(chain) >= start:
                blocks = tuple(chain[start - 1 : end])
                self.step(index, Fetched(sender=NodeId(candidate), blocks=blocks))
                return

    def deliver_all(self, *, steps_max: int = 20_000) -> int:
        delivered = 0
        while self.queue:
            delivered += 1
            assert delivered <= steps_max, "messages keep flowing"
            source, target, data = self.queue.popleft()
            message = self.codec.decode(data)
            assert self.codec.invalid(message, NodeId(source)) is None
            if self.engines[target] is None or self.drop(source, target, message):
                continue
            self.delivered.append((source, target, message))
            self.step(target, Received(sender=NodeId(source), message=message))
        return delivered

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            for index, engine in enumerate(self.engines):
                if engine is not None:
                    self.step(index, Tick())
            self.deliver_all()

    # --- proposing ----------------------------------------------------------------------------

    def make_block(self, index: int, *, salt: int = 0) -> Block:
        """The block node `index` would build for its engine's proposal slot."""
        slot = self.engine(index).status().proposal_slot
        assert slot is not None, f"node {index} offers no proposal slot"
        return self.block_for(index, height=slot.height, prev_hash=slot.prev_hash, salt=salt)

    def block_for(self, index: int, *, height: int, prev_hash: bytes, salt: int = 0) -> Block:
        depth = self.configs[index].pipeline_depth
        exec_height = height - depth
        if exec_height <= 0:
            exec_fields = (0, ZERO_HASH, ZERO_HASH)
        else:
            notice = self.states[index].executed[exec_height - 1]
            exec_fields = (exec_height, notice.app_hash, notice.results_root)
        self.block_counter += 1
        return make_block(
            chain_id=CHAIN_ID,
            height=height,
            prev_hash=prev_hash,
            time_ms=1000 * height + salt,
            proposer=self.keys[index].public_key,
            txs=(),
            validators_hash=self.validators.hash(),
            exec_height=exec_fields[0],
            exec_app_hash=exec_fields[1],
            exec_results_root=exec_fields[2],
        )

    def propose(self, index: int, *, salt: int = 0) -> Block:
        block = self.make_block(index, salt=salt)
        self.step(index, Propose(block))
        return block

    def primary(self) -> int:
        views = {e.view for e in self.engines if e is not None and e.active}
        view = max(views)
        return view % len(self.engines)

    def run_blocks(self, count: int, *, ticks_max: int = 400) -> None:
        """Have the current primary propose until every live node committed `count` more."""
        live = [i for i, e in enumerate(self.engines) if e is not None]
        target = max(self.states[i].height for i in live) + count
        for _ in range(ticks_max):
            if all(self.states[i].height >= target for i in live):
                return
            primary = self.primary()
            engine = self.engines[primary]
            slot = engine.status().proposal_slot if engine is not None else None
            if slot is not None and slot.height <= target:
                self.propose(primary)
            self.deliver_all()
            self.tick()
        raise AssertionError(f"heights {[s.height for s in self.states]} never reached {target}")

    def assert_agreement(self) -> None:
        """No two nodes committed different blocks at one height."""
        by_height: dict[int, bytes] = {}
        for state in self.states:
            for sealed in state.chain:
                digest = sealed.block.hash()
                assert by_height.setdefault(sealed.height, digest) == digest, sealed.height
