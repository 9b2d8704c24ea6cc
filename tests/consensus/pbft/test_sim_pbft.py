"""PBFT under the deterministic simulator (consensus/sim/): named scenarios.

The simulator's own suite (tests/consensus/sim/test_pbft_sim.py) runs generated mixed
scenarios over many seeds; these are hand-written PBFT situations, each checked for safety
(agreement, seals, chain links, execution) and, after healing, liveness. Every message goes
through the real PbftCodec and real Ed25519 signatures. A failure names its seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import pytest

from consensus.pbft import messages as m
from consensus.pbft.codec import PbftCodec
from consensus.pbft.config import PbftConfig
from consensus.pbft.engine import PbftEngine
from consensus.sim import checkers
from consensus.sim.cluster import Cluster, ClusterConfig
from consensus.sim.network import NetworkFaults
from consensus.sim.node import ChainParams, EngineFactory
from consensus.types import BlockExecuted, EngineStatus, Event, NodeId, Output
from protocol.crypto import ZERO_HASH
from protocol.sealed import SealedBlock

PIPELINE_DEPTH = 2


def _config(params: ChainParams, node_id: int) -> PbftConfig:
    return PbftConfig(
        chain_id=params.chain_id,
        validators=params.validators,
        node_id=node_id,
        pipeline_depth=params.pipeline_depth,
        checkpoint_interval_seqs=4,
        watermark_window_seqs=16,
    )


class RecordingEngine:
    """A PbftEngine that records every message it sends (for the durability check)."""

    def __init__(self, engine: PbftEngine, sent: list[object]) -> None:
        self.engine = engine
        self.sent = sent

    def step(self, event: Event) -> Output:
        output = self.engine.step(event)
        self.sent.extend(envelope.message for envelope in output.send)
        return output

    def status(self) -> EngineStatus:
        return self.engine.status()


def make_factory(sent: dict[int, list[object]]) -> Callable[[ChainParams], EngineFactory]:
    def make(params: ChainParams) -> EngineFactory:
        def build(
            node_id: NodeId,
            *,
            restored: Mapping[bytes, bytes],
            committed: tuple[SealedBlock, ...],
            executed: tuple[BlockExecuted, ...],
        ) -> RecordingEngine:
            engine = PbftEngine(
                _config(params, node_id),
                key=params.keys[node_id],
                restored=restored,
                committed_height=len(committed),
                committed_hash=committed[-1].block.hash() if committed else ZERO_HASH,
                executed=executed,
                rng=random.Random(node_id),
            )
            return RecordingEngine(engine, sent.setdefault(node_id, []))

        return build

    return make


def make_cluster(
    seed: int, node_count: int, faults: NetworkFaults
) -> tuple[Cluster, dict[int, list[object]]]:
    sent: dict[int, list[object]] = {}
    config = ClusterConfig(
        seed=seed, node_count=node_count, pipeline_depth=PIPELINE_DEPTH, faults=faults
    )
    cluster = Cluster(
        config,
        make_factory(sent),
        make_codec=lambda params: PbftCodec(_config(params, 0)),
    )
    return cluster, sent


def views(cluster: Cluster) -> list[int]:
    return [node.engine.status().round for node in cluster.nodes if node.engine is not None]


def assert_no_conflicting_votes(sent: dict[int, list[object]]) -> None:
    """No replica ever signed two digests for one (kind, view, seq), restarts included."""
    for replica, messages in sent.items():
        signed: dict[tuple[str, int, int], bytes] = {}
        for message in messages:
            if isinstance(message, m.PrePrepare | m.Prepare | m.Commit):
                key = (type(message).__name__, message.view, message.seq)
                digest = message.digest
                assert signed.setdefault(key, digest) == digest, (replica, key)


def burst(cluster: Cluster, *, rounds: int, ticks: int = 10) -> None:
    for _ in range(rounds):
        cluster.submit(3, to_all=True)
        cluster.run(ticks)


@pytest.mark.parametrize(("node_count", "seed"), [(4, 1), (7, 2)])
def test_sim_primary_crash_view_change_then_restart(node_count: int, seed: int) -> None:
    # §4.4 under a lossy network: the primary dies mid-stream, the rest move on, it returns.
    faults = NetworkFaults(delay_ticks=(1, 5), drop_probability=0.03)
    cluster, sent = make_cluster(seed, node_count, faults)
    burst(cluster, rounds=5)
    cluster.crash(0)
    burst(cluster, rounds=15)
    assert min(views(cluster)) >= 1, f"seed {seed}: no view change"
    cluster.check_safety()
    cluster.restart(0)
    checkers.check_liveness(cluster, ticks_max=3_000)
    cluster.check_safety()
    assert_no_conflicting_votes(sent)


def test_sim_partition_without_quorum_stalls_safely_then_heals() -> None:
    # n = 7, quorum 5: neither side of a 3 / 4 split can commit; after healing both continue.
    cluster, sent = make_cluster(5, 7, NetworkFaults(delay_ticks=(1, 4)))
    burst(cluster, rounds=3)
    cluster.partition([(0, 1, 2), (3, 4, 5, 6)])
    heights = cluster.heights()
    burst(cluster, rounds=15)
    assert max(cluster.heights()) <= max(heights) + PIPELINE_DEPTH, "a minority committed"
    cluster.check_safety()
    cluster.heal()
    checkers.check_liveness(cluster, ticks_max=5_000)
    cluster.check_safety()
    assert_no_conflicting_votes(sent)


def test_sim_backup_crashing_and_restarting_never_signs_conflicting_votes() -> None:
    # Durability: votes persisted before sending; a replica restarted from its records
    # may repeat a vote but never contradict one, across views and checkpoints.
    faults = NetworkFaults(delay_ticks=(1, 6), drop_probability=0.05, duplicate_probability=0.05)
    cluster, sent = make_cluster(11, 4, faults)
    for round_index in range(12):
        burst(cluster, rounds=2, ticks=8)
        victim = 1 + round_index % 3
        cluster.crash(victim)
        burst(cluster, rounds=1, ticks=8)
        cluster.restart(victim)
    cluster.heal()
    checkers.check_liveness(cluster, ticks_max=4_000)
    cluster.check_safety()
    assert_no_conflicting_votes(sent)
    assert min(node.height for node in cluster.nodes) >= 8  # checkpoints (K = 4) were cut


def test_sim_lagging_replica_catches_up_through_checkpoints_and_fetch() -> None:
    # Catch-up: a replica cut off for many checkpoints returns and fetches sealed blocks.
    cluster, sent = make_cluster(3, 4, NetworkFaults(delay_ticks=(1, 3)))
    cluster.partition([(3,), (0, 1, 2)])
    burst(cluster, rounds=25)
    assert cluster.nodes[3].height == 0
    assert cluster.nodes[0].height >= 12
    cluster.heal()
    checkers.check_liveness(cluster, ticks_max=3_000)
    cluster.check_safety()
    engine = cluster.nodes[3].engine
    assert isinstance(engine, RecordingEngine)
    assert engine.engine.counters["fetched_blocks"] > 0
    assert_no_conflicting_votes(sent)
