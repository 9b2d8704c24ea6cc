"""Raft (consensus/raft/) in the deterministic simulator, with Raft's Figure 3 checkers
(consensus/sim/raft_checkers.py) on top of the generic ones (agreement, chain links, seals,
validity, execution, liveness after healing).

Goal: no violation of election safety, leader append-only, log matching, leader
completeness or state-machine safety, no honest fork, every seal valid, and progress once
faults stop. Method: the generic seeded scenario (drops, delays, duplicates, partitions,
clogs, clock skew, crash/restart, execution lag) plus crashes of whoever leads, up to a
minority down at once (tests/consensus/raft/raft_scenarios.py), with the real RaftCodec on
every message and real Ed25519.

Tiers:
    unmarked     a quiet cluster of 3 and 5 and a few seeds each, in the fast tier;
    slow         the CI seed range (n=3 and n=5), about 1-2 minutes on this machine;
    sim_long     thousands of seeds by hand: SIM_SEEDS=0-1999 pytest -m sim_long ...
A failure prints `SIM_SEED=<n> pytest <this test>` and the last deliveries per node.
"""

from __future__ import annotations

import os

import pytest

from consensus.raft.log import RaftLog
from consensus.sim import checkers
from consensus.sim.failure import SimulationFailure
from consensus.sim.seeds import seeds_from_env
from tests.consensus.raft.raft_harness import leader_of, raft_cluster
from tests.consensus.raft.raft_scenarios import run_raft_scenario

CI_SEEDS_N3 = range(60)
CI_SEEDS_N5 = range(40)


@pytest.mark.parametrize("node_count", [3, 5])
def test_quiet_cluster_commits_every_tx(node_count: int) -> None:
    cluster, history = raft_cluster(0, node_count=node_count)
    for _ in range(6):
        cluster.submit(5)
        cluster.run(10)
    checkers.check_liveness(cluster, ticks_max=500)
    cluster.check_safety()
    assert len(history.leaders) == 1, "a quiet cluster elects once"
    assert all(
        node.app.has_executed(tx.replay_key)
        for node in cluster.nodes
        for tx in cluster.client.submitted.values()
    )


@pytest.mark.parametrize("node_count", [3, 5])
def test_crashing_the_leader_elects_another_and_loses_nothing(node_count: int) -> None:
    cluster, history = raft_cluster(3, node_count=node_count)
    cluster.submit(10)
    cluster.run(60)
    old = leader_of(cluster)
    assert old is not None
    committed = cluster.nodes[old].height
    assert committed > 0
    cluster.crash(old)
    crashed_at = cluster.now
    # A new leader within about two election timeouts (timeout + pre-vote + vote rounds).
    elected = cluster.run(60, until=lambda c: leader_of(c) not in (None, old))
    assert elected, "no new leader"
    assert cluster.now - crashed_at <= 45
    cluster.submit(5)
    cluster.restart(old)
    checkers.check_liveness(cluster, ticks_max=1_000)
    cluster.check_safety()
    assert all(node.height >= committed for node in cluster.nodes)
    assert len(history.leaders) >= 2


@pytest.mark.parametrize("node_count", [3, 5])
def test_partitioned_node_returns_and_catches_up_from_a_snapshot(node_count: int) -> None:
    """§7 end to end: a node cut off while the others commit far past the log retention
    (8 heights here) comes back behind the leader's base, installs the snapshot, fetches
    the sealed chain from peers, and then follows the log again."""
    cluster, _ = raft_cluster(5, node_count=node_count)
    cluster.submit(4)
    cluster.run(60)
    leader = leader_of(cluster)
    assert leader is not None
    cut = (leader + 1) % node_count
    others = [i for i in range(node_count) if i != cut]
    cluster.partition([[cut], others])
    for _ in range(20):
        cluster.submit(3)
        cluster.run(10)
    assert cluster.nodes[cut].height + 20 < cluster.nodes[leader].height
    cluster.heal()
    checkers.check_liveness(cluster, ticks_max=2_000)
    cluster.check_safety()
    engine = cluster.nodes[cut].engine
    assert engine is not None
    installed = engine.status().extra["snapshots_installed"]
    assert isinstance(installed, int)
    assert installed >= 1  # more than one if the leader's base moved during the fetch


def test_same_seed_same_run() -> None:
    """Determinism: every choice comes from the seed (timeouts from the injected RNG)."""
    digests = []
    for _ in range(2):
        cluster, _ = raft_cluster(11, node_count=3)
        cluster.submit(6)
        cluster.run(80)
        cluster.crash(leader_of(cluster) or 0)
        cluster.run(80)
        digests.append((cluster.trace_digest(), tuple(cluster.heights())))
    assert digests[0] == digests[1]


@pytest.mark.parametrize("seed", seeds_from_env(range(3)))
@pytest.mark.parametrize("node_count", [3, 5])
def test_raft_sim_smoke(seed: int, node_count: int) -> None:
    run_raft_scenario(seed, node_count=node_count)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds_from_env(CI_SEEDS_N3))
def test_raft_sim_ci_n3(seed: int) -> None:
    run_raft_scenario(seed, node_count=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds_from_env(CI_SEEDS_N5))
def test_raft_sim_ci_n5(seed: int) -> None:
    run_raft_scenario(seed, node_count=5)


_LONG_SEEDS = seeds_from_env(range(1)) if os.environ.get("SIM_SEEDS") else []


@pytest.mark.sim_long
@pytest.mark.skipif(not _LONG_SEEDS, reason="set SIM_SEEDS, e.g. SIM_SEEDS=0-1999")
@pytest.mark.parametrize("node_count", [3, 5])
@pytest.mark.parametrize("seed", _LONG_SEEDS or [0])
def test_raft_sim_long(seed: int, node_count: int) -> None:
    run_raft_scenario(seed, node_count=node_count, fault_ticks=600)


# --- positive controls: the checkers catch a broken Raft ----------------------------------------


def test_positive_control_voting_without_the_log_check_breaks_leader_completeness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """§5.4.1 removed: voters grant any candidate. Some seed must then elect a leader that
    lacks a committed entry, and the Figure 3 checkers must say so."""
    monkeypatch.setattr(RaftLog, "up_to_date", lambda self, **_: True)
    caught: dict[int, tuple[str, str]] = {}
    for seed in range(30):
        try:
            run_raft_scenario(seed, node_count=3, fault_ticks=200)
        except SimulationFailure as failure:
            caught[seed] = (failure.property_name, str(failure))
            break
    assert caught, "a Raft without §5.4.1 passed 30 seeds: the checkers are blind"
    ((seed, (property_name, text)),) = caught.items()
    assert f"SIM_SEED={seed}" in text
    assert {property_name} & {
        "leader completeness",
        "state machine safety",
        "log matching",
        "agreement",
        "leader append-only",
    }, caught


def test_positive_control_log_matching_checker_sees_diverging_logs() -> None:
    cluster, history = raft_cluster(0, node_count=3)
    cluster.submit(4)
    cluster.run(60)
    follower = next(n for n in cluster.nodes if n.engine and n.engine.status().role == "follower")
    inner = follower.engine.inner  # type: ignore[union-attr]
    index = inner.log.last_index
    # Rewrite the follower's entry in place (same term, another block): Log Matching broken.
    position = index - inner.log.base.index - 1
    entry = inner.log._entries[position]
    other = next(e for e in reversed(inner.log._entries) if e.block is not entry.block)
    inner.log._entries[position] = type(entry)(
        term=entry.term, signer=entry.signer, block=other.block,
        seal_signature=other.seal_signature,
    )  # fmt: skip
    with pytest.raises(SimulationFailure) as failure:
        history.check(cluster)
    assert failure.value.property_name == "log matching"
