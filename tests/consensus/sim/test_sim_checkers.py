"""Each checker must fire on the violation it is named for, with the seed and a reproduce
line in the message; and a real fork made by f + 1 colluding byzantine nodes running the
toy engine must be reported (the positive control, RELIABILITY S9)."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from consensus.sim import checkers
from consensus.sim.byzantine import RewritingEngine, garbage, silent
from consensus.sim.cluster import Cluster, ClusterConfig
from consensus.sim.failure import SimulationFailure
from consensus.sim.network import NetworkFaults
from consensus.sim.node import ChainParams
from consensus.sim.toy import LEADER, ToyCodec, ToyCommit, ToyProposal, ToyVote, toy_factory
from consensus.types import Engine, EngineStatus, Envelope, Event, NodeId, Output, Received
from protocol.block import Block, make_block
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote
from protocol.sealed import SealedBlock


def _committed_cluster(seed: int = 11) -> Cluster:
    cluster = Cluster(
        ClusterConfig(seed=seed, node_count=4, faults=NetworkFaults()),
        toy_factory,
        make_codec=ToyCodec,
    )
    for _ in range(3):
        cluster.submit(4, to_all=True)
        cluster.run(30)
    assert min(cluster.heights()) >= 3
    cluster.check_safety()
    return cluster


def _other_block(block: Block, *, txs: tuple[object, ...] | None = None) -> Block:
    header = block.header
    return make_block(
        chain_id=header.chain_id,
        height=header.height,
        prev_hash=header.prev_hash,
        time_ms=header.time_ms + 1,
        proposer=header.proposer,
        txs=block.txs if txs is None else txs,  # type: ignore[arg-type]
        validators_hash=header.validators_hash,
        exec_height=header.exec_height,
        exec_app_hash=header.exec_app_hash,
        exec_results_root=header.exec_results_root,
    )


def _expect(cluster: Cluster, property_name: str) -> str:
    with pytest.raises(SimulationFailure) as failure:
        cluster.check_safety()
    assert failure.value.property_name == property_name
    text = str(failure.value)
    assert f"SIM_SEED={cluster.seed}" in text
    assert "last deliveries per node" in text
    return text


def test_agreement_flags_two_blocks_at_one_height() -> None:
    cluster = _committed_cluster()
    node = cluster.nodes[2]
    forged = _other_block(node.chain[-1].block)
    node.chain[-1] = dataclasses.replace(node.chain[-1], block=forged)
    # Keep execution consistent with the forged chain so only agreement can complain.
    node.app.blocks.pop()
    node.app.execute(forged)
    checkers.check_chain_links(cluster)
    with pytest.raises(SimulationFailure, match="node 2 committed") as failure:
        checkers.check_agreement(cluster)
    assert failure.value.property_name == "agreement"


def test_seal_validity_flags_a_seal_without_quorum() -> None:
    cluster = _committed_cluster()
    node = cluster.nodes[1]
    sealed = node.chain[0]
    short = dataclasses.replace(sealed.seal, signatures=sealed.seal.signatures[:1])
    node.chain[0] = SealedBlock(block=sealed.block, seal=short)
    assert "quorum" in _expect(cluster, "seal validity")


def test_chain_links_flag_a_broken_prev_hash() -> None:
    cluster = _committed_cluster()
    node = cluster.nodes[3]
    node.chain[0], node.chain[1] = node.chain[1], node.chain[0]
    _expect(cluster, "chain links")


def test_validity_flags_a_tx_nobody_submitted() -> None:
    cluster = _committed_cluster()
    tx_hash, _ = cluster.client.new_tx()
    del cluster.client.submitted[tx_hash]
    first = next(iter(cluster.client.submitted))
    del cluster.client.submitted[first]
    assert "never submitted" in _expect(cluster, "validity")


def test_execution_flags_diverging_app_hashes() -> None:
    cluster = _committed_cluster()
    executed = cluster.nodes[0].app.blocks[0]
    cluster.nodes[0].app.blocks[0] = dataclasses.replace(executed, app_hash=bytes(32))
    _expect(cluster, "execution")


def test_liveness_flags_a_cluster_that_cannot_commit() -> None:
    cluster = _committed_cluster()
    cluster.crash(LEADER)  # the toy engine has no view change: nothing can commit
    with pytest.raises(SimulationFailure, match="after 100 ticks") as failure:
        checkers.check_liveness(cluster, ticks_max=100)
    assert failure.value.property_name == "liveness"


def test_extra_checkers_run_after_the_generic_ones() -> None:
    cluster = _committed_cluster()
    calls: list[int] = []

    def raft_election_safety(current: Cluster) -> None:
        calls.append(current.now)
        raise current.fail("election safety", "two leaders in term 3")

    cluster.extra_checkers.append(raft_election_safety)
    assert "two leaders" in _expect(cluster, "election safety")
    assert calls == [cluster.now]


def test_silent_byzantine_leader_stops_the_toy_chain_but_breaks_no_safety() -> None:
    cluster = Cluster(
        ClusterConfig(seed=2, node_count=4),
        toy_factory,
        make_codec=ToyCodec,
        byzantine={0: silent},
    )
    cluster.submit(5, to_all=True)
    cluster.run(200)
    assert cluster.nodes[0].counters.proposals == 1  # it proposed, and told no one
    assert cluster.heights() == [0, 0, 0, 0]
    assert cluster.honest() == cluster.nodes[1:]
    cluster.check_safety()


class _ForkingLeader:
    """Byzantine leader colluding with byzantine node 1 (f + 1 = 2 of 4): it shows its
    block A to nodes 1 and 2 and a conflicting block B to node 3, and seals B with its own,
    node 1's and node 3's votes. Node 2 commits A, node 3 commits B: a fork."""

    VICTIM = NodeId(3)

    def __init__(self, engine: Engine, params: ChainParams) -> None:
        self._inner = engine
        self._params = params
        self._forks: dict[bytes, Block] = {}  # hash of B -> B

    def step(self, event: Event) -> Output:
        output = self._inner.step(event)
        match event:
            case Received(sender=sender, message=ToyVote() as vote) if sender == self.VICTIM:
                extra = self._seal_fork(vote)
                output = output.merge(extra)
        return Output(
            persist=output.persist,
            send=tuple(self._rewrite(envelope) for envelope in output.send),
            commit=output.commit,
            fetch=output.fetch,
        )

    def status(self) -> EngineStatus:
        return self._inner.status()

    def _rewrite(self, envelope: Envelope) -> Envelope:
        message = envelope.message
        if isinstance(message, ToyProposal) and envelope.to is None:
            fork = _other_block(message.block, txs=())
            self._forks[fork.hash()] = fork
            return Envelope(None, _Split(message, ToyProposal(message.round, fork)))
        if isinstance(message, ToyCommit) and envelope.to is None:
            return Envelope(None, _Split(message, None))
        return envelope

    def _seal_fork(self, vote: ToyVote) -> Output:
        fork = self._forks.get(vote.block_hash)
        if fork is None:
            return Output()
        signatures = [
            (index, sign_commit_vote(self._params.keys[index], chain_id=self._params.chain_id,
                                     view=vote.round, height=vote.height,
                                     block_hash=vote.block_hash))
            for index in (0, 1)
        ]  # fmt: skip
        signatures.append((self.VICTIM, vote.signature))
        seal = Seal(
            kind=SEAL_QUORUM,
            round=vote.round,
            height=vote.height,
            block_hash=vote.block_hash,
            signatures=tuple(signatures),
        )
        commit = ToyCommit(SealedBlock(block=fork, seal=seal))
        return Output(send=(Envelope(self.VICTIM, commit),))


@dataclasses.dataclass(frozen=True)
class _Split:
    """A broadcast whose victim copy differs (None: the victim gets nothing)."""

    everyone: object
    victim: object | None


def _forking_leader(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
    leader = _ForkingLeader(engine, params)

    def unsplit(event: Event, output: Output) -> Output:
        sends: list[Envelope] = []
        for envelope in output.send:
            if not isinstance(envelope.message, _Split):
                sends.append(envelope)
                continue
            split = envelope.message
            sends.extend(Envelope(NodeId(i), split.everyone) for i in (1, 2))
            if split.victim is not None:
                sends.append(Envelope(_ForkingLeader.VICTIM, split.victim))
        return msgspec.structs.replace(output, send=tuple(sends))

    return RewritingEngine(leader, unsplit)


def _accomplice(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
    return RewritingEngine(engine, lambda event, output: output)


def test_positive_control_f_plus_one_colluders_fork_and_agreement_reports_it() -> None:
    cluster = Cluster(
        ClusterConfig(seed=21, node_count=4, faults=NetworkFaults(delay_ticks=(1, 3))),
        toy_factory,
        make_codec=ToyCodec,
        byzantine={0: _forking_leader, 1: _accomplice},
    )
    cluster.submit(3, to_all=True)
    cluster.run(100, until=lambda c: c.nodes[2].height >= 1 and c.nodes[3].height >= 1)
    with pytest.raises(SimulationFailure, match="height 1") as failure:
        cluster.check_safety()
    assert failure.value.property_name == "agreement"
    assert "SIM_SEED=21" in str(failure.value)


def test_one_leader_per_round_holds_for_the_toy_and_flags_a_second_leader() -> None:
    """Election safety observed every tick: the toy's leader restarts into a new round
    (fine); a node that claims leadership of a round someone else leads is flagged."""
    cluster = _committed_cluster()
    observer = checkers.OneLeaderPerRound()
    cluster.tick_observers.append(observer.observe)
    cluster.crash(LEADER)
    cluster.restart(LEADER)
    cluster.submit(2, to_all=True)
    cluster.run(50)
    leader_round = cluster.nodes[LEADER].engine.status().round  # type: ignore[union-attr]
    impostor = cluster.nodes[2]
    assert impostor.engine is not None
    inner: Engine = impostor.engine

    class Impostor:
        def step(self, event: Event) -> Output:
            return inner.step(event)

        def status(self) -> EngineStatus:
            return msgspec.structs.replace(inner.status(), role="leader", round=leader_round)

    impostor.engine = Impostor()
    with pytest.raises(SimulationFailure, match="both leader in round") as failure:
        cluster.run(1)
    assert failure.value.property_name == "election safety"


def test_garbage_from_a_byzantine_node_is_rejected_and_counted_never_fatal() -> None:
    cluster = Cluster(
        ClusterConfig(seed=5, node_count=4, faults=NetworkFaults()),
        toy_factory,
        make_codec=ToyCodec,
        byzantine={1: garbage},
    )
    cluster.submit(6, to_all=True)
    checkers.check_liveness(cluster, ticks_max=300)
    cluster.check_safety()
    assert min(node.counters.rejected_messages for node in cluster.nodes if node.node_id != 1) > 0
