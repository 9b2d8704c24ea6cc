"""Shared helpers for the Raft tests: engine factories for the simulator, and a tiny
in-test router that steps engines and delivers their messages by hand."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from consensus.raft.codec import RaftCodec
from consensus.raft.config import RaftConfig
from consensus.raft.engine import RaftEngine
from consensus.sim.app import FakeApplication
from consensus.sim.cluster import Cluster, ClusterConfig, validator_keys
from consensus.sim.network import QUIET, NetworkFaults
from consensus.sim.node import ChainParams, EngineFactory
from consensus.sim.raft_checkers import RaftHistory, observed_factory
from consensus.types import (
    BlockExecuted,
    Engine,
    Event,
    FetchRequest,
    NodeId,
    Output,
    Propose,
    Received,
    Tick,
)
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH
from protocol.sealed import SealedBlock
from protocol.tx import Tx
from protocol.validators import ValidatorSet

ELECTION_TIMEOUT_TICKS = 10
CHAIN_ID = "raft-test"


def raft_config(params: ChainParams, node_id: int, **overrides: object) -> RaftConfig:
    settings: dict[str, object] = {
        "chain_id": params.chain_id,
        "validators": params.validators,
        "node_id": node_id,
        "pipeline_depth": params.pipeline_depth,
        "election_timeout_ticks": ELECTION_TIMEOUT_TICKS,
        "heartbeat_ticks": 2,
        "log_retention_heights": 8,
        "compaction_step_heights": 4,
    }
    settings.update(overrides)
    return RaftConfig(**settings)  # type: ignore[arg-type]


def raft_factory(params: ChainParams, *, seed: int = 0, **overrides: object) -> EngineFactory:
    """Each (seed, node, restart) gets its own RNG stream, derived without `hash()` (which
    is salted per process), so a seed reproduces in any process."""

    def build(
        node_id: NodeId,
        *,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed: tuple[BlockExecuted, ...],
    ) -> Engine:
        return RaftEngine(
            raft_config(params, node_id, **overrides),
            key=params.keys[node_id],
            restored=restored,
            committed_height=len(committed),
            committed_hash=committed[-1].block.hash() if committed else ZERO_HASH,
            executed=executed,
            rng=random.Random(f"{params.chain_id}/{seed}/{int(node_id)}/{len(restored)}"),
        )

    return build


def raft_codec(params: ChainParams) -> RaftCodec:
    return RaftCodec(raft_config(params, 0))


def raft_cluster(
    seed: int,
    *,
    node_count: int,
    faults: NetworkFaults = QUIET,
    pipeline_depth: int = 2,
    exec_delay_ticks: int = 0,
    **overrides: object,
) -> tuple[Cluster, RaftHistory]:
    history = RaftHistory()
    config = ClusterConfig(
        seed=seed,
        node_count=node_count,
        faults=faults,
        pipeline_depth=pipeline_depth,
        exec_delay_ticks=exec_delay_ticks,
    )
    cluster = Cluster(
        config,
        lambda params: observed_factory(raft_factory(params, seed=seed, **overrides), history),
        make_codec=raft_codec,
    )
    history.attach(cluster)
    return cluster, history


def leader_of(cluster: Cluster) -> int | None:
    leaders = [
        int(node.node_id)
        for node in cluster.nodes
        if node.engine is not None and node.engine.status().role == "leader"
    ]
    return leaders[-1] if leaders else None


class Router:
    """A tiny in-test network for engine unit tests: steps engines by hand, honours each
    Output like the node does (persist, then send into a FIFO inbox, then commit and execute
    at once, feeding BlockExecuted back), and delivers messages only when told to. Messages go
    through the real codec (encode, decode, invalid) so every test also exercises it."""

    def __init__(self, node_count: int, *, pipeline_depth: int = 2, **overrides: object) -> None:
        keys = validator_keys(node_count, chain_id=CHAIN_ID)
        self.params = ChainParams(
            chain_id=CHAIN_ID,
            validators=ValidatorSet(tuple(key.public_key for key in keys)),
            keys=keys,
            pipeline_depth=pipeline_depth,
        )
        self.overrides = overrides
        self.codec = RaftCodec(raft_config(self.params, 0, **overrides))
        self.persisted: dict[int, dict[bytes, bytes]] = {i: {} for i in range(node_count)}
        self.chains: dict[int, list[SealedBlock]] = {i: [] for i in range(node_count)}
        self.apps = {i: FakeApplication() for i in range(node_count)}
        self.engines: dict[int, RaftEngine] = {}
        self.down: set[int] = set()
        self.isolated: set[int] = set()  # running, but cut off from everyone
        self.inbox: list[tuple[int, int, object]] = []  # (from, to, message)
        self.fetches: dict[int, list[FetchRequest]] = {i: [] for i in range(node_count)}
        for node in range(node_count):
            self.start(node)

    def config(self, node: int) -> RaftConfig:
        return raft_config(self.params, node, **self.overrides)

    def start(self, node: int, *, seed: int = 0) -> RaftEngine:
        chain = self.chains[node]
        engine = RaftEngine(
            self.config(node),
            key=self.params.keys[node],
            restored=dict(self.persisted[node]),
            committed_height=len(chain),
            committed_hash=chain[-1].block.hash() if chain else ZERO_HASH,
            executed=tuple(block.notice() for block in self.apps[node].blocks),
            rng=random.Random(seed * 100 + node),
        )
        self.engines[node] = engine
        self.down.discard(node)
        return engine

    def crash(self, node: int) -> None:
        self.down.add(node)
        self.inbox = [item for item in self.inbox if node not in item[:2]]

    # --- stepping -----------------------------------------------------------------------

    def step(self, node: int, event: Event) -> Output:
        assert node not in self.down
        output = self.engines[node].step(event)
        self.absorb(node, output)
        return output

    def absorb(self, node: int, output: Output) -> None:
        store = self.persisted[node]
        for key, value in output.persist:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        for envelope in output.send:
            targets = [int(envelope.to)] if envelope.to is not None else sorted(self.engines)
            data = self.codec.encode(envelope.message)
            for target in targets:
                if target == node or target in self.down:
                    continue
                if {node, target} & self.isolated:
                    continue
                self.inbox.append((node, target, data))
        for sealed in output.commit:
            self._commit(node, sealed)
        self.fetches[node].extend(output.fetch)

    def _commit(self, node: int, sealed: SealedBlock) -> None:
        chain = self.chains[node]
        assert sealed.height == len(chain) + 1, "commits arrive in height order"
        assert sealed.invalid_for(self.params.validators) is None
        chain.append(sealed)
        notice = self.apps[node].execute(sealed.block).notice()
        self.step(node, notice)

    def tick(self, node: int, count: int = 1) -> None:
        for _ in range(count):
            self.step(node, Tick())

    def deliver(self, *, only: Callable[[int, int, object], bool] | None = None) -> int:
        """Deliver every queued message (and those they cause) in FIFO order; `only`
        filters, dropping the rest. Returns the number delivered."""
        delivered = 0
        while self.inbox:
            sender, target, data = self.inbox.pop(0)
            message = self.codec.decode(data)  # type: ignore[arg-type]
            assert self.codec.invalid(message, NodeId(sender)) is None
            if target in self.down or (only is not None and not only(sender, target, message)):
                continue
            delivered += 1
            assert delivered < 100_000, "message storm"
            self.step(target, Received(NodeId(sender), message))
        return delivered

    def take(self) -> list[tuple[int, int, object]]:
        """Remove and return the queued messages, decoded."""
        taken = [(s, t, self.codec.decode(d)) for s, t, d in self.inbox]  # type: ignore[arg-type]
        self.inbox.clear()
        return taken

    def heartbeat(self, leader: int) -> None:
        """One heartbeat round from `leader`, delivered (followers learn its commit index)."""
        self.tick(leader, self.config(leader).heartbeat_ticks)
        self.deliver()

    def elect(self, node: int) -> None:
        """Fire `node`'s election timer, then deliver everything: it wins if it can."""
        engine = self.engines[node]
        while engine.role in ("follower",):
            self.tick(node)
        self.deliver()

    def propose(self, node: int, *, txs: tuple[Tx, ...] = ()) -> Block | None:
        slot = self.engines[node].status().proposal_slot
        if slot is None:
            return None
        block = self.block_for(node, slot.height, slot.prev_hash, txs=txs)
        self.step(node, Propose(block))
        return block

    def block_for(
        self, node: int, height: int, prev_hash: bytes, *, txs: tuple[Tx, ...] = ()
    ) -> Block:
        exec_height = max(height - self.params.pipeline_depth, 0)
        executed = self.apps[node].at(exec_height) if exec_height else None
        return make_block(
            chain_id=CHAIN_ID,
            height=height,
            prev_hash=prev_hash,
            time_ms=height,
            proposer=self.params.keys[node].public_key,
            txs=txs,
            validators_hash=self.params.validators.hash(),
            exec_height=exec_height,
            exec_app_hash=executed.app_hash if executed else ZERO_HASH,
            exec_results_root=executed.results_root if executed else ZERO_HASH,
        )

    def heights(self) -> list[int]:
        return [len(self.chains[node]) for node in sorted(self.chains)]
