"""Persist-before-vote, end to end in the simulator (mutation check, docs/MUTATION-CHECK.md).

The scenario sim tests crash replicas at random moments, but an honest replica can only
contradict a vote it forgot if it is later shown a *different* block for the same (view,
seq), and the random equivocator shows each replica one block only. So a replica that sent
its PREPARE without persisting it went unnoticed there. Here the primary is byzantine in
exactly the way that exposes it: it pre-prepares block A to everyone and, two ticks later,
a conflicting block B for the same (view, seq) to one backup, which in between has crashed
right after sending its PREPARE for A and restarted from its persisted records.
"""

from __future__ import annotations

from consensus.pbft import messages as m
from consensus.pbft.codec import PbftCodec
from consensus.pbft.config import PbftConfig
from consensus.sim.byzantine import conflicting_block
from consensus.sim.cluster import Cluster, ClusterConfig
from consensus.sim.network import NetworkFaults
from consensus.sim.node import ChainParams
from consensus.types import Engine, EngineStatus, Envelope, Event, NodeId, Output, Tick
from tests.consensus.pbft.pbft_harness import Router
from tests.consensus.pbft.test_sim_pbft import (
    RecordingEngine,
    assert_no_conflicting_votes,
    make_factory,
)

PRIMARY = 0
VICTIM = 3
LATE_TICKS = 2  # the conflicting pre-prepare leaves this many primary ticks after the first


def _first_pre_prepare(output: Output) -> m.PrePrepare | None:
    messages = [envelope.message for envelope in output.send]
    return next((msg for msg in messages if isinstance(msg, m.PrePrepare)), None)


class LateEquivocator:
    """The primary's engine, plus: for its first PRE-PREPARE, a conflicting one for the same
    (view, seq) sent to `target` alone, `LATE_TICKS` of its ticks later."""

    def __init__(self, inner: Engine, *, params: ChainParams, target: int) -> None:
        self.inner = inner
        self.key = params.keys[PRIMARY]
        self.chain_id = params.chain_id
        self.target = NodeId(target)
        self.late: m.PrePrepare | None = None
        self.ticks_left = LATE_TICKS
        self.sent_late = False

    def step(self, event: Event) -> Output:
        output = self.inner.step(event)
        extra: list[Envelope] = []
        if self.late is None:
            first = _first_pre_prepare(output)
            if first is not None:
                self.late = m.make_pre_prepare(
                    self.key,
                    chain_id=self.chain_id,
                    view=first.view,
                    seq=first.seq,
                    block=conflicting_block(first.block),
                    replica=PRIMARY,
                )
        elif not self.sent_late and isinstance(event, Tick):
            self.ticks_left -= 1
            if self.ticks_left == 0:
                self.sent_late = True
                extra.append(Envelope(to=self.target, message=self.late))
        return Output(
            persist=output.persist,
            send=output.send + tuple(extra),
            commit=output.commit,
            fetch=output.fetch,
        )

    def status(self) -> EngineStatus:
        return self.inner.status()


def _config(params: ChainParams, node_id: int) -> PbftConfig:
    return PbftConfig(
        chain_id=params.chain_id,
        validators=params.validators,
        node_id=node_id,
        pipeline_depth=params.pipeline_depth,
        checkpoint_interval_seqs=4,
        watermark_window_seqs=16,
    )


def test_replica_crashed_right_after_its_prepare_never_prepares_a_conflicting_block() -> None:
    sent: dict[int, list[object]] = {}
    wrappers: dict[int, LateEquivocator] = {}

    def wrap(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
        wrappers[node_id] = LateEquivocator(engine, params=params, target=VICTIM)
        return wrappers[node_id]

    config = ClusterConfig(
        seed=7, node_count=4, pipeline_depth=2, faults=NetworkFaults(delay_ticks=(1, 1))
    )
    cluster = Cluster(
        config,
        make_factory(sent),
        make_codec=lambda params: PbftCodec(_config(params, 0)),
        byzantine={PRIMARY: wrap},
    )
    crashed: list[int] = []

    def crash_after_first_prepare(cluster: Cluster) -> None:
        if crashed or not any(isinstance(msg, m.Prepare) for msg in sent.get(VICTIM, [])):
            return
        crashed.append(cluster.now)
        cluster.crash(VICTIM)  # right after the tick in which it voted: its records are durable
        cluster.restart(VICTIM)

    cluster.tick_observers.append(crash_after_first_prepare)
    cluster.submit(3, to_all=True)
    cluster.run(60, until=lambda c: wrappers[PRIMARY].sent_late and bool(crashed) and c.now > 40)
    assert crashed, "the victim never prepared"
    assert wrappers[PRIMARY].sent_late, "the conflicting pre-prepare was never sent"
    assert_no_conflicting_votes(sent)
    cluster.check_safety()
    victim = cluster.nodes[VICTIM].engine
    assert isinstance(victim, RecordingEngine)
    # The conflicting block reached the restarted replica and was refused, not missed.
    assert victim.engine.counters["pre_prepares_rejected"] >= 1


def test_block_committed_at_one_replica_survives_when_all_others_restart_before_view_change() -> (
    None
):
    # §4.4 with restarts: replica 3 alone committed block B (the others prepared it but lost
    # the COMMITs), then went away. Replicas 0, 1 and 2 crash and restart before the view
    # change, so the certificate for B survives only on disk. It must still reach NEW-VIEW's
    # O: otherwise the new primary proposes another block at height 1 and the chain forks.
    router = Router(4)
    router.drop = lambda source, target, message: isinstance(message, m.Commit) and target != 3
    block = router.propose(0)
    router.deliver_all()
    assert [state.height for state in router.states] == [0, 0, 0, 1]
    router.crash(3)
    router.drop = lambda source, target, message: False
    for index in (0, 1, 2):
        router.crash(index)
        router.restart(index)
    for index in (0, 1, 2):
        router.start_view_change(index, 1)
    router.deliver_all()
    assert all(router.engine(index).view == 1 for index in (0, 1, 2))
    router.run_blocks(2)
    for index in (0, 1, 2):
        assert router.states[index].chain[0].block.hash() == block.hash()
    router.restart(3)
    router.tick(12)
    router.assert_agreement()
