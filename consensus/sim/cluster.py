"""N simulated validators on one seeded network under one virtual clock.

One tick, in this order, always:
    1. every delivery due now reaches its target (network order: time, then send order);
    2. every live node executes the commits whose (lagged) execution is due;
    3. every live node gets `Tick()` (a skewed clock: one every `tick_every` ticks);
    4. txs that clients gave a node are gossiped to the others (one hop);
    5. every live node whose engine offers a proposal slot may propose;
    6. engine-contract violations fail the run, then `tick_observers` run.
Everything random (delays, drops, the client's choices, which peer answers a fetch) comes
from generators seeded from `ClusterConfig.seed`, and nothing iterates an unordered set, so
a seed fixes the whole run; `trace_digest` lets a test prove it.

Messages can be round-tripped through the engine's `MessageCodec` (encode once at send,
decode and `invalid()` at every receiver). An honest sender whose message fails that is a
codec bug and stops the run with a `SimulationFailure`; a byzantine sender's is counted and
dropped, as the real node's edge would. Byzantine peers also answer fetches with forged
blocks, so an engine that trusts one peer's blocks without checking seals is caught.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from consensus.sim import checkers
from consensus.sim.byzantine import forged_answer
from consensus.sim.client import SimClient
from consensus.sim.failure import SimulationFailure, format_failure
from consensus.sim.network import QUIET, NetworkFaults, SimNetwork
from consensus.sim.node import (
    BlockExtractor,
    ByzantineWrapper,
    ChainParams,
    EngineFactory,
    NodeEffects,
    SimNode,
    blocks_in_message,
)
from consensus.types import (
    Event,
    Fetched,
    FetchRequest,
    MessageCodec,
    NodeId,
    Received,
    Tick,
)
from protocol.crypto import SigningKey
from protocol.encoding import DecodeError
from protocol.sealed import SealedBlock
from protocol.tx import Tx
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)

FETCH_BLOCKS_MAX = 32  # blocks in one simulated fetch answer
GOSSIP_TXS_MAX = 64  # txs in one simulated gossip message


def validator_keys(count: int, *, chain_id: str) -> tuple[SigningKey, ...]:
    """Deterministic validator keys: the same chain id and index give the same key."""
    return tuple(SigningKey.from_secret(f"{chain_id}/validator/{i}".encode()) for i in range(count))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    seed: int
    node_count: int
    chain_id: str = "sim-chain"
    pipeline_depth: int = 1
    block_txs_max: int = 64
    tick_ms: int = 10
    exec_delay_ticks: int = 0
    faults: NetworkFaults = QUIET
    block_extractor: BlockExtractor = blocks_in_message


@dataclass(slots=True)
class _Wire:
    message: object
    data: bytes | None  # the codec's encoding, when a codec is configured
    checked: tuple[object, str | None] | None = None  # (decoded, reason) once checked


@dataclass(frozen=True, slots=True)
class _Gossip:
    txs: tuple[tuple[bytes, Tx], ...]  # (tx hash, tx)


@dataclass(frozen=True, slots=True)
class _FetchAnswer:
    blocks: tuple[SealedBlock, ...]


Checker = Callable[["Cluster"], None]


@dataclass(slots=True)
class _Trace:
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    deliveries: int = 0

    def add(self, line: str) -> None:
        self.deliveries += 1
        self.digest.update(line.encode())
        self.digest.update(b"\n")


class Cluster:
    """`make_factory` and `make_codec` receive the chain's parameters (keys, validator set)
    and return the engine factory and, optionally, the codec every message goes through."""

    def __init__(
        self,
        config: ClusterConfig,
        make_factory: Callable[[ChainParams], EngineFactory],
        *,
        make_codec: Callable[[ChainParams], MessageCodec] | None = None,
        byzantine: Mapping[int, ByzantineWrapper] | None = None,
    ) -> None:
        self.config = config
        self.byzantine = frozenset(byzantine or {})  # the checkers do not vouch for these
        self.seed = config.seed
        keys = validator_keys(config.node_count, chain_id=config.chain_id)
        self.params = ChainParams(
            chain_id=config.chain_id,
            validators=ValidatorSet(tuple(key.public_key for key in keys)),
            keys=keys,
            pipeline_depth=config.pipeline_depth,
            block_txs_max=config.block_txs_max,
            tick_ms=config.tick_ms,
            exec_delay_ticks=config.exec_delay_ticks,
        )
        factory = make_factory(self.params)
        self.codec = None if make_codec is None else make_codec(self.params)
        root = random.Random(config.seed)
        self.network = SimNetwork(
            random.Random(root.getrandbits(64)), node_count=config.node_count, faults=config.faults
        )
        self._rng = random.Random(root.getrandbits(64))
        self.client = SimClient(
            random.Random(root.getrandbits(64)), chain_id=config.chain_id, seed=config.seed
        )
        self.nodes = [
            SimNode(
                NodeId(i),
                params=self.params,
                factory=factory,
                wrapper=(byzantine or {}).get(i),
                block_extractor=config.block_extractor,
            )
            for i in range(config.node_count)
        ]
        self.now = 0
        self.extra_checkers: list[Checker] = []  # run by check_safety (engine-specific)
        self.tick_observers: list[Checker] = []  # run after every tick (e.g. one leader)
        self._trace = _Trace()
        self.verified_seals: set[tuple[bytes, bytes]] = set()  # (block hash, seal bytes)

    # --- views for tests and checkers ----------------------------------------------------

    @property
    def validators(self) -> ValidatorSet:
        return self.params.validators

    def honest(self) -> list[SimNode]:
        return [node for node in self.nodes if not node.byzantine]

    def heights(self) -> list[int]:
        return [node.height for node in self.nodes]

    def trace_digest(self) -> str:
        return self._trace.digest.hexdigest()

    def fail(self, property_name: str, detail: str) -> SimulationFailure:
        histories = {int(node.node_id): list(node.history) for node in self.nodes}
        message = format_failure(
            property_name=property_name,
            detail=detail,
            seed=self.seed,
            now=self.now,
            histories=histories,
        )
        return SimulationFailure(message, seed=self.seed, property_name=property_name)

    # --- client --------------------------------------------------------------------------

    def submit(self, count: int, *, to_all: bool = False, resubmit_probability: float = 0.0) -> int:
        """Sign `count` new txs and hand each to one random live node (or to every live
        node). With `resubmit_probability`, also re-send an old tx to a random node.
        Returns how many nodes accepted a tx."""
        accepted = 0
        for _ in range(count):
            tx_hash, tx = self.client.new_tx()
            for node in self._submit_targets(to_all=to_all):
                accepted += node.submit(tx, tx_hash)
            if resubmit_probability and self._rng.random() < resubmit_probability:
                old = self.client.old_tx()
                assert old is not None
                for node in self._submit_targets(to_all=False):
                    accepted += node.submit(old[1], old[0])
        return accepted

    def _submit_targets(self, *, to_all: bool) -> list[SimNode]:
        live = [node for node in self.nodes if node.alive]
        if to_all or not live:
            return live
        return [self._rng.choice(live)]

    # --- faults --------------------------------------------------------------------------

    def crash(self, index: int) -> None:
        self.nodes[index].crash()
        self.network.isolate(index)
        self._trace.add(f"{self.now} crash {index}")

    def restart(self, index: int, *, amnesia: bool = False) -> None:
        """Bring node `index` back from its durable state. With `amnesia`, its persisted
        consensus records are lost first (RELIABILITY B5: a faulty node, which counts
        towards f); its chain and executed state stay."""
        node = self.nodes[index]
        if amnesia:
            node.durable.clear()
        node.start()
        self.network.rejoin(index)
        self._trace.add(f"{self.now} restart {index} amnesia={amnesia}")

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        self.network.partition(groups)

    def skew_clock(self, index: int, *, tick_every: int) -> None:
        """Slow node `index`'s clock down: its engine sees one Tick per `tick_every` ticks
        (RELIABILITY N8; safety must not depend on clocks). 1 restores it."""
        assert tick_every >= 1
        self.nodes[index].tick_every = tick_every

    def heal(self) -> None:
        """Heal partitions and clogs; crashed nodes stay down until `restart`."""
        self.network.heal(now=self.now)

    # --- running -------------------------------------------------------------------------

    def run(self, ticks_max: int, *, until: Callable[[Cluster], bool] | None = None) -> bool:
        """Advance up to `ticks_max` ticks; stop early (True) once `until` holds."""
        assert ticks_max >= 0
        for _ in range(ticks_max):
            if until is not None and until(self):
                return True
            self.tick()
        return until is not None and until(self)

    def tick(self) -> None:
        self.now += 1
        for delivery in list(self.network.due(self.now)):
            node = self.nodes[delivery.target]
            if not node.alive:
                continue
            event = self._event_for(delivery.source, delivery.target, delivery.payload)
            if event is not None:
                self._step(node, event)
        for node in self.nodes:
            if node.alive:
                self._route(node, node.execute_due(now=self.now))
        for node in self.nodes:
            if node.alive and self.now % node.tick_every == 0:
                self._step(node, Tick())
        for node in self.nodes:
            self._flush_gossip(node)
        for node in self.nodes:
            block = node.proposal(now=self.now)
            if block is not None:
                self._trace.add(f"{self.now} propose {node.node_id} h={block.height}")
                self._route(node, node.propose(block, now=self.now))
        for node in self.nodes:
            if node.violations:
                raise self.fail("engine contract", f"node {node.node_id}: {node.violations[0]}")
        for observer in self.tick_observers:
            observer(self)

    def _step(self, node: SimNode, event: Event) -> None:
        self._route(node, node.step(event, now=self.now))

    def _flush_gossip(self, node: SimNode) -> None:
        outbox, node.gossip_outbox = node.gossip_outbox, []
        for first in range(0, len(outbox), GOSSIP_TXS_MAX):
            gossip = _Gossip(tuple(outbox[first : first + GOSSIP_TXS_MAX]))
            for peer in self.nodes:
                if peer.node_id != node.node_id:
                    self.network.send(
                        self.now, source=node.node_id, target=peer.node_id, payload=gossip
                    )

    def _event_for(self, source: int, target: int, payload: object) -> Event | None:
        node = self.nodes[target]
        if isinstance(payload, _Gossip):
            for tx_hash, tx in payload.txs:
                node.submit(tx, tx_hash, from_client=False)
            return None
        if isinstance(payload, _FetchAnswer):
            self._trace.add(f"{self.now} fetched {source}->{target} n={len(payload.blocks)}")
            node.history.append(f"t{self.now} from {source}: Fetched n={len(payload.blocks)}")
            return Fetched(NodeId(source), payload.blocks)
        assert isinstance(payload, _Wire)
        message = self._through_codec(source, target, payload)
        if message is None:
            return None
        body = hashlib.sha256(payload.data).hexdigest()[:16] if payload.data else repr(message)
        self._trace.add(f"{self.now} {source}->{target} {type(message).__name__} {body}")
        node.history.append(f"t{self.now} from {source}: {summary(message)}")
        return Received(NodeId(source), message)

    def _through_codec(self, source: int, target: int, wire: _Wire) -> object | None:
        """Decode and check at the receiver. The codec is a pure function of (bytes,
        sender), so the first receiver's answer serves every copy of one send: the same
        checks, done once per distinct message rather than once per receiver."""
        codec = self.codec
        if codec is None or wire.data is None:
            return wire.message
        if wire.checked is None:
            wire.checked = self._check_wire(codec, source, wire)
        message, reason = wire.checked
        if reason is None:
            return message
        if source not in self.byzantine:
            raise self.fail("codec", f"{source}->{target}: {reason}")
        self.nodes[target].counters.rejected_messages += 1
        return None

    def _check_wire(
        self, codec: MessageCodec, source: int, wire: _Wire
    ) -> tuple[object, str | None]:
        assert wire.data is not None
        try:
            message = codec.decode(wire.data)
        except DecodeError as error:
            return None, f"decode failed: {error}"
        reason = codec.invalid(message, NodeId(source))
        if reason is not None:
            return message, f"honest message invalid: {reason}"
        if wire.message is not None and message != wire.message:
            return message, f"round trip changed {summary(message)}"
        return message, None

    def _route(self, node: SimNode, effects: NodeEffects) -> None:
        for envelope in effects.sends:
            wire = self._wire(node, envelope.message)
            if wire is None:
                continue
            targets = (
                [envelope.to]
                if envelope.to is not None
                else [i for i in range(len(self.nodes)) if i != node.node_id]
            )
            for target in targets:
                if target != node.node_id:
                    self.network.send(self.now, source=node.node_id, target=target, payload=wire)
        for request in effects.fetches:
            self._serve_fetch(node, request)

    def _wire(self, node: SimNode, message: object) -> _Wire | None:
        """Encode once per send. A byzantine node may send raw `bytes` (garbage on the
        wire, which needs a codec to mean anything) or objects the codec cannot encode;
        both are dropped or delivered as the real edge would see them, never a crash."""
        if self.codec is None:
            return None if node.byzantine and isinstance(message, bytes) else _Wire(message, None)
        if node.byzantine and isinstance(message, bytes):
            return _Wire(None, message)
        if not node.byzantine:
            return _Wire(message, self.codec.encode(message))
        try:
            return _Wire(message, self.codec.encode(message))
        except (TypeError, ValueError, AssertionError):
            node.counters.unencodable += 1
            return None

    def _serve_fetch(self, node: SimNode, request: FetchRequest) -> None:
        """Answer from a chosen peer's committed chain, over the (lossy) network. A
        byzantine peer answers with forged blocks (byzantine.forged_answer)."""
        node.counters.fetch_requests += 1
        node.history.append(f"t{self.now} fetch {request.from_height}..{request.to_height}")
        peer = self._fetch_peer(node, request)
        first = max(request.from_height, 1)
        last = (
            first - 1
            if peer is None
            else min(request.to_height, peer.height, first + FETCH_BLOCKS_MAX - 1)
        )
        if peer is None or last < first:
            node.counters.fetch_unanswered += 1
            return
        blocks = tuple(peer.chain[first - 1 : last])
        node.counters.fetch_forged += peer.byzantine
        answer = _FetchAnswer(forged_answer(blocks) if peer.byzantine else blocks)
        self.network.send(self.now, source=peer.node_id, target=node.node_id, payload=answer)

    def _fetch_peer(self, node: SimNode, request: FetchRequest) -> SimNode | None:
        if request.peer is not None and request.peer != node.node_id:
            hinted = self.nodes[request.peer]
            if hinted.alive and self.network.connected(hinted.node_id, node.node_id):
                return hinted
        candidates = [
            peer
            for peer in self.nodes
            if peer.node_id != node.node_id
            and peer.alive
            and self.network.connected(peer.node_id, node.node_id)
        ]
        return self._rng.choice(candidates) if candidates else None

    # --- checks --------------------------------------------------------------------------

    def check_safety(self) -> None:
        """Every safety checker (checkers.py), then any engine-specific extra ones."""
        checkers.check_safety(self)
        for checker in self.extra_checkers:
            checker(self)


_SUMMARY_FIELDS = (
    "view",
    "new_view",
    "term",
    "seq",
    "height",
    "round",
    "index",
    "digest",
    "block_hash",
)


def summary(message: object) -> str:
    """A short, cheap description: the type and its well-known numeric fields."""
    parts = [type(message).__name__]
    for name in _SUMMARY_FIELDS:
        value = getattr(message, name, None)
        if isinstance(value, int):
            parts.append(f"{name}={value}")
        elif isinstance(value, bytes):
            parts.append(f"{name}={value.hex()[:8]}")
    return " ".join(parts)


def live_honest(cluster: Cluster) -> Sequence[SimNode]:
    return [node for node in cluster.honest() if node.alive]
