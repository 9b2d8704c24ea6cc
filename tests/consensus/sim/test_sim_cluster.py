"""The cluster harness end to end, driven by the toy engine (consensus/sim/toy.py) and the
single-validator engine (consensus/solo.py): proposing, committing, executing, crashing,
restarting, partitions, fetch, the codec round trip and determinism."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from consensus.sim import checkers
from consensus.sim.app import CODE_REPLAY, FakeApplication
from consensus.sim.byzantine import garbage
from consensus.sim.cluster import Cluster, ClusterConfig
from consensus.sim.failure import SimulationFailure
from consensus.sim.network import NetworkFaults
from consensus.sim.node import ChainParams, EngineFactory
from consensus.sim.toy import ToyCodec, toy_factory
from consensus.solo import SoloConfig, SoloEngine
from consensus.types import BlockExecuted, Engine, NodeId
from protocol.block import make_block
from protocol.crypto import ZERO_HASH
from protocol.sealed import SealedBlock

LOSSY = NetworkFaults(delay_ticks=(1, 6), drop_probability=0.05, duplicate_probability=0.05)


def _toy_cluster(seed: int = 1, *, faults: NetworkFaults = LOSSY, nodes: int = 4) -> Cluster:
    config = ClusterConfig(seed=seed, node_count=nodes, faults=faults)
    return Cluster(config, toy_factory, make_codec=ToyCodec)


def _all_committed(cluster: Cluster) -> bool:
    submitted = {tx.replay_key for tx in cluster.client.submitted.values()}
    return (
        all(all(node.app.has_executed(key) for key in submitted) for node in cluster.nodes)
        and len(set(cluster.heights())) == 1
    )


def test_submitted_txs_commit_and_execute_on_every_node() -> None:
    cluster = _toy_cluster()
    cluster.submit(30, resubmit_probability=0.3)
    assert cluster.run(2_000, until=_all_committed)
    cluster.check_safety()
    app_hashes = {node.app.app_hash for node in cluster.nodes}
    assert len(app_hashes) == 1
    assert ZERO_HASH not in app_hashes


def test_proof_blocks_follow_txs_then_chain_goes_quiet() -> None:
    """With P = 1, a block with txs is followed by one empty block (it seals the results),
    and then nobody proposes: no empty-block churn."""
    cluster = _toy_cluster(faults=NetworkFaults())
    cluster.submit(5, to_all=True)
    cluster.run(300)
    chain = cluster.nodes[0].chain
    assert [len(sealed.block.txs) > 0 for sealed in chain] == [True, False]
    assert chain[1].block.header.exec_app_hash == cluster.nodes[0].app.at(1).app_hash  # type: ignore[union-attr]


def test_two_runs_with_one_seed_are_identical_and_seeds_differ() -> None:
    def run(seed: int) -> tuple[str, list[bytes]]:
        cluster = _toy_cluster(seed)
        for _ in range(20):
            cluster.submit(3, resubmit_probability=0.2)
            cluster.run(15)
        cluster.crash(2)
        cluster.run(50)
        cluster.restart(2)
        cluster.run(100)
        return cluster.trace_digest(), [s.block.hash() for s in cluster.nodes[0].chain]

    first = run(5)
    assert first == run(5)
    assert first[0] != run(6)[0]


class _RecordingFactory:
    """Wraps the toy factory to keep what each (re)start was given."""

    def __init__(self, params: ChainParams) -> None:
        self._inner = toy_factory(params)
        self.starts: list[tuple[int, dict[bytes, bytes], int]] = []

    def __call__(
        self,
        node_id: NodeId,
        *,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed: tuple[BlockExecuted, ...],
    ) -> Engine:
        self.starts.append((node_id, dict(restored), len(committed)))
        return self._inner(node_id, restored=restored, committed=committed, executed=executed)


def test_crash_loses_volatile_state_and_restart_gets_persisted_records() -> None:
    factories: list[_RecordingFactory] = []

    def make(params: ChainParams) -> EngineFactory:
        factories.append(_RecordingFactory(params))
        return factories[0]

    cluster = Cluster(ClusterConfig(seed=3, node_count=4), make, make_codec=ToyCodec)
    cluster.submit(10, to_all=True)
    cluster.run(200, until=_all_committed)
    node = cluster.nodes[1]
    votes = dict(node.durable)
    height = node.height
    assert any(key.startswith(b"toy/vote/") for key in votes)
    cluster.submit(5)  # some of these sit in node 1's pool only
    cluster.crash(1)
    assert not node.alive
    assert not node.pending
    assert node.durable == votes
    cluster.run(100)
    assert node.height == height  # a crashed node commits nothing
    cluster.restart(1)
    assert factories[0].starts[-1] == (1, votes, height)
    checkers.check_liveness(cluster, ticks_max=500)
    cluster.check_safety()
    cluster.crash(1)
    cluster.restart(1, amnesia=True)  # B5: the persisted records are gone, the chain stays
    assert factories[0].starts[-1] == (1, {}, node.height)


def test_partition_stops_commits_and_heal_restores_them() -> None:
    cluster = _toy_cluster(faults=NetworkFaults())
    cluster.partition([(0, 1), (2, 3)])  # the leader has 2 of the 3 votes it needs
    cluster.submit(5, to_all=True)
    cluster.run(200)
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.heal()
    assert cluster.run(200, until=_all_committed)


def test_lagging_node_catches_up_through_fetch() -> None:
    cluster = _toy_cluster(faults=NetworkFaults())
    cluster.partition([(0, 1, 2), (3,)])
    for _ in range(5):
        cluster.submit(2, to_all=True)
        cluster.run(40)
    assert cluster.nodes[3].height == 0 < cluster.nodes[0].height
    cluster.heal()
    checkers.check_liveness(cluster, ticks_max=500)
    assert cluster.nodes[3].chain == cluster.nodes[0].chain


class _CorruptingCodec(ToyCodec):
    """Rejects every vote: the harness must call that a codec bug, not carry on."""

    def invalid(self, message: object, sender: NodeId) -> str | None:
        if type(message).__name__ == "ToyVote":
            return "bad signature (injected)"
        return super().invalid(message, sender)


def test_codec_round_trip_reports_an_honest_message_it_rejects() -> None:
    cluster = Cluster(ClusterConfig(seed=9, node_count=4), toy_factory, make_codec=_CorruptingCodec)
    cluster.submit(3, to_all=True)
    with pytest.raises(SimulationFailure, match="honest message invalid") as failure:
        cluster.run(100)
    assert failure.value.property_name == "codec"
    assert "SIM_SEED=9" in str(failure.value)


def _solo_factory(params: ChainParams) -> EngineFactory:
    def build(
        node_id: NodeId,
        *,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed: tuple[BlockExecuted, ...],
    ) -> Engine:
        config = SoloConfig(
            chain_id=params.chain_id,
            validators=params.validators,
            pipeline_depth=params.pipeline_depth,
        )
        return SoloEngine(
            config,
            key=params.keys[node_id],
            committed_height=len(committed),
            committed_hash=committed[-1].block.hash() if committed else ZERO_HASH,
            executed_height=len(executed),
        )

    return build


@pytest.mark.parametrize(("pipeline_depth", "exec_delay_ticks"), [(1, 0), (2, 0), (2, 3)])
def test_solo_engine_commits_and_survives_restart(
    pipeline_depth: int, exec_delay_ticks: int
) -> None:
    config = ClusterConfig(
        seed=4, node_count=1, pipeline_depth=pipeline_depth, exec_delay_ticks=exec_delay_ticks
    )
    cluster = Cluster(config, _solo_factory)
    cluster.submit(100)
    assert cluster.run(50, until=_all_committed)
    cluster.crash(0)
    cluster.restart(0)
    checkers.check_liveness(cluster, ticks_max=50)
    cluster.check_safety()
    chain = cluster.nodes[0].chain
    assert sum(len(sealed.block.txs) for sealed in chain) == 103
    assert not chain[-1].block.txs  # the proof block that seals the last txs' results


def test_fake_application_executes_a_duplicate_as_replay() -> None:
    cluster = _toy_cluster(faults=NetworkFaults())
    _, tx = cluster.client.new_tx()
    block = make_block(
        chain_id="sim-chain",
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=0,
        proposer=cluster.params.keys[0].public_key,
        txs=(tx, tx),
        validators_hash=cluster.validators.hash(),
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )
    executed = FakeApplication().execute(block)
    assert [result.code for result in executed.results] == [0, CODE_REPLAY]
    assert executed.executed_tx_hashes == (tx.hash(),)


def test_execution_lag_runs_blocks_in_order_and_restart_executes_the_backlog() -> None:
    """With execution 5 ticks behind commit, a crash can leave committed blocks
    unexecuted; the restarted node executes them first, and every check still holds."""
    config = ClusterConfig(seed=8, node_count=4, exec_delay_ticks=5, faults=LOSSY)
    cluster = Cluster(config, toy_factory, make_codec=ToyCodec)
    node = cluster.nodes[2]
    for _ in range(40):
        cluster.submit(2)
        cluster.run(3)
        if node.height > node.app.height:
            break
    assert node.height > node.app.height  # committed, not yet executed
    cluster.crash(2)
    cluster.restart(2)
    cluster.run(1)
    assert node.app.height == node.height
    checkers.check_liveness(cluster, ticks_max=1_000)
    cluster.check_safety()


def test_lagging_node_rejects_forged_fetch_answers_and_still_catches_up() -> None:
    """Node 1 is byzantine and answers fetches with conflicting blocks under real seals;
    node 3 must refuse them (the toy checks every seal) and get the chain from others.
    Which peer answers is a seeded choice, so a few seeds make sure some hit node 1."""
    forged = 0
    for seed in range(6):
        config = ClusterConfig(seed=seed, node_count=4, faults=NetworkFaults())
        cluster = Cluster(config, toy_factory, make_codec=ToyCodec, byzantine={1: garbage})
        cluster.partition([(0, 1, 2), (3,)])
        for _ in range(4):
            cluster.submit(2, to_all=True)
            cluster.run(40)
        cluster.heal()
        checkers.check_liveness(cluster, ticks_max=1_000)
        cluster.check_safety()
        lagging = cluster.nodes[3]
        assert lagging.chain == cluster.nodes[0].chain
        forged += lagging.counters.fetch_forged
    assert forged > 0
