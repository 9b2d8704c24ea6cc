"""Raft fault scenarios for the simulator: the generic mixed scenario (consensus/sim/
scenario.py) plus what Raft must survive and PBFT's generator does not produce.

Raft tolerates a minority of crashed nodes, f = (n - 1) // 2, more than PBFT's
(n - 1) // 3, so on top of the generic timeline this adds crashes of *whoever leads at
that moment*, and restarts after a random pause, keeping at most f nodes down at once. A
node down long enough comes back behind the leader's compacted log and must catch up from
a snapshot. Amnesia (losing the persisted term, vote and log) is stripped: Raft's safety
assumes stable storage, so a node that lost it must be re-provisioned, not restarted.

`run_raft_scenario` follows STYLE §3.8: a safety phase with faults on and a client
submitting, then heal + restart everything and require fresh txs to commit everywhere.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass

from consensus.sim import checkers
from consensus.sim.cluster import Cluster
from consensus.sim.raft_checkers import RaftHistory
from consensus.sim.scenario import FaultAction, Scenario, generate_scenario
from tests.consensus.raft.raft_harness import leader_of, raft_cluster


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftReport:
    heights: tuple[int, ...]
    terms: int
    leader_crashes: int
    counters: dict[str, int]


def raft_scenario(seed: int, *, node_count: int, fault_ticks: int) -> Scenario:
    scenario = generate_scenario(
        seed, node_count=node_count, fault_ticks=fault_ticks, liveness_ticks=3_000
    )
    actions = tuple(dataclasses.replace(action, amnesia=False) for action in scenario.actions)
    return dataclasses.replace(scenario, actions=actions)


def run_raft_scenario(seed: int, *, node_count: int, fault_ticks: int = 300) -> RaftReport:
    scenario = raft_scenario(seed, node_count=node_count, fault_ticks=fault_ticks)
    cluster, history = raft_cluster(
        seed,
        node_count=node_count,
        faults=scenario.faults,
        exec_delay_ticks=scenario.exec_delay_ticks,
    )
    rng = random.Random(seed * 7_919 + node_count)
    leader_crash_at = sorted(rng.sample(range(20, fault_ticks), 3))
    restarts: dict[int, int] = {}  # node -> restart tick
    actions = list(scenario.actions)
    leader_crashes = 0
    for _ in range(fault_ticks):
        while actions and actions[0].at_tick <= cluster.now:
            _apply(cluster, actions.pop(0))
        if leader_crash_at and cluster.now >= leader_crash_at[0]:
            leader_crash_at.pop(0)
            leader_crashes += _crash_leader(cluster, rng, restarts)
        for node, at in sorted(restarts.items()):
            if at <= cluster.now:
                del restarts[node]
                if not cluster.nodes[node].alive:
                    cluster.restart(node)
        if cluster.now % scenario.burst_every_ticks == 0:
            cluster.submit(scenario.txs_per_burst, resubmit_probability=0.1)
        cluster.tick()
    cluster.check_safety()
    _heal_all(cluster)
    checkers.check_liveness(cluster, ticks_max=scenario.liveness_ticks)
    cluster.check_safety()
    return _report(cluster, history, leader_crashes)


def _crash_leader(cluster: Cluster, rng: random.Random, restarts: dict[int, int]) -> int:
    leader = leader_of(cluster)
    down = sum(not node.alive for node in cluster.nodes)
    if leader is None or down >= (len(cluster.nodes) - 1) // 2:
        return 0
    cluster.crash(leader)
    restarts[leader] = cluster.now + rng.randint(10, 150)
    return 1


def _heal_all(cluster: Cluster) -> None:
    cluster.heal()
    for node in cluster.nodes:
        cluster.skew_clock(node.node_id, tick_every=1)
        if not node.alive:
            cluster.restart(node.node_id)


def _report(cluster: Cluster, history: RaftHistory, leader_crashes: int) -> RaftReport:
    counters: Counter[str] = Counter()
    for node in cluster.nodes:
        assert node.engine is not None
        for name, value in node.engine.status().extra.items():
            if isinstance(value, int) and name in _SUMMED:
                counters[name] += value
    return RaftReport(
        heights=tuple(cluster.heights()),
        terms=len(history.leaders),
        leader_crashes=leader_crashes,
        counters=dict(counters),
    )


_SUMMED = (
    "snapshots_installed",
    "compactions",
    "check_quorum_step_downs",
    "votes_ignored_in_lease",
    "entries_truncated",
    "append_consistency_rejects",
    "pre_votes_started",
    "elections_started",
)


def _apply(cluster: Cluster, action: FaultAction) -> None:
    """The generic scenario's actions (consensus/sim/scenario.py), without amnesia."""
    if action.kind == "partition":
        cluster.partition(action.groups)
    elif action.kind == "heal":
        cluster.network.heal_partitions()
    elif action.kind == "crash" and cluster.nodes[action.node].alive:
        down = sum(not node.alive for node in cluster.nodes)
        if down < (len(cluster.nodes) - 1) // 2:
            cluster.crash(action.node)
    elif action.kind == "restart" and not cluster.nodes[action.node].alive:
        cluster.restart(action.node)
    elif action.kind == "clog":
        cluster.network.clog(action.node, action.target)
    elif action.kind == "unclog":
        cluster.network.unclog(action.node, action.target, now=cluster.now)
    elif action.kind == "skew":
        cluster.skew_clock(action.node, tick_every=action.target)
