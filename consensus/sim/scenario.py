"""Mixed fault scenarios generated from a seed, and the two-phase run that checks them.

A scenario is plain data (print it with `describe()`): network knobs (delay range, drop and
duplicate probabilities), a timeline of fault actions in the faulty phase (partitions that
heal, clogged links, crashes and restarts) and optionally a byzantine initial primary
(node 0, the view-0 primary / first leader). The generator never makes more than f nodes
faulty at once: byzantine + crashed <= f.

`run_scenario` follows STYLE §3.8 / TigerBeetle's VOPR:
    1. safety phase: faults on, a client submits bursts of txs (some resubmitted, so
       duplicates reach blocks); safety is checked at the end of the phase;
    2. liveness phase: heal the network, restart every crashed node, then require fresh
       txs to commit everywhere within a tick budget; check safety again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from consensus.sim import checkers
from consensus.sim.cluster import Cluster, ClusterConfig
from consensus.sim.network import NetworkFaults
from consensus.sim.node import ByzantineWrapper, ChainParams, EngineFactory
from consensus.types import MessageCodec
from protocol.quorum import max_faulty

log = logging.getLogger(__name__)

AMNESIA_PROBABILITY = 0.2
ACTION_KINDS = ("partition", "heal", "crash", "restart", "clog", "unclog", "skew")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultAction:
    at_tick: int
    kind: str  # one of ACTION_KINDS
    node: int = -1  # crash, restart; the source of a clogged link
    target: int = -1  # the target of a clogged link; the skew factor (1: normal clock)
    groups: tuple[tuple[int, ...], ...] = ()  # partition
    amnesia: bool = False  # restart: persisted consensus records are lost (B5)

    def __post_init__(self) -> None:
        assert self.kind in ACTION_KINDS, self.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    seed: int
    node_count: int
    faults: NetworkFaults
    actions: tuple[FaultAction, ...]
    byzantine: str | None  # a wrapper name for node 0, or None
    fault_ticks: int
    liveness_ticks: int
    exec_delay_ticks: int = 0  # execution lags commit by this many ticks
    txs_per_burst: int = 4
    burst_every_ticks: int = 10
    resubmit_probability: float = 0.1

    def describe(self) -> str:
        lines = [
            f"seed {self.seed}: n={self.node_count} byzantine={self.byzantine} "
            f"delay={self.faults.delay_ticks} drop={self.faults.drop_probability} "
            f"dup={self.faults.duplicate_probability} exec_delay={self.exec_delay_ticks}"
        ]
        for action in self.actions:
            detail = action.groups if action.kind == "partition" else (action.node, action.target)
            amnesia = " amnesia" if action.amnesia else ""
            lines.append(f"  t{action.at_tick} {action.kind} {detail}{amnesia}")
        return "\n".join(lines)


def generate_scenario(
    seed: int,
    *,
    node_count: int,
    fault_ticks: int = 400,
    liveness_ticks: int = 3_000,
    byzantine_kinds: tuple[str, ...] = (),
    byzantine_probability: float = 0.3,
    amnesia_probability: float = AMNESIA_PROBABILITY,
) -> Scenario:
    """A mixed scenario from `seed` alone: same seed, same scenario. Crash-fault-only
    protocols (Raft) pass `amnesia_probability=0`: losing persisted votes is a byzantine
    fault for them."""
    rng = random.Random(seed * 1_000_003 + node_count)
    byzantine = None
    if byzantine_kinds and max_faulty(node_count) > 0 and rng.random() < byzantine_probability:
        byzantine = rng.choice(byzantine_kinds)
    crash_budget = max_faulty(node_count) - (byzantine is not None)
    faults = NetworkFaults(
        delay_ticks=(1, rng.choice((2, 4, 8, 16))),
        drop_probability=rng.choice((0.0, 0.01, 0.05, 0.1)),
        duplicate_probability=rng.choice((0.0, 0.02, 0.1)),
    )
    actions = [
        *_partitions(rng, node_count, fault_ticks),
        *_clogs(rng, node_count, fault_ticks),
        *_skews(rng, node_count, fault_ticks),
        *_crashes(
            rng,
            node_count,
            fault_ticks,
            budget=crash_budget,
            spare=byzantine is not None,
            amnesia_probability=amnesia_probability,
        ),
    ]
    actions.sort(key=lambda action: (action.at_tick, ACTION_KINDS.index(action.kind)))
    exec_delay_ticks = rng.choice((0, 0, 1, 3))
    return Scenario(
        seed=seed,
        node_count=node_count,
        faults=faults,
        actions=tuple(actions),
        byzantine=byzantine,
        fault_ticks=fault_ticks,
        liveness_ticks=liveness_ticks,
        exec_delay_ticks=exec_delay_ticks,
    )


def _partitions(rng: random.Random, node_count: int, fault_ticks: int) -> list[FaultAction]:
    """Up to two partition episodes, one after the other, each healed before the next."""
    actions: list[FaultAction] = []
    start = rng.randrange(fault_ticks // 4 + 1)
    for _ in range(rng.randint(0, 2)):
        end = start + rng.randint(20, max(fault_ticks // 3, 21))
        if end >= fault_ticks or node_count < 2:
            break
        nodes = list(range(node_count))
        rng.shuffle(nodes)
        cut = 1 if rng.random() < 0.5 else node_count // 2  # isolate one, or halves
        groups = (tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:])))
        actions.append(FaultAction(at_tick=start, kind="partition", groups=groups))
        actions.append(FaultAction(at_tick=end, kind="heal"))
        start = end + rng.randint(10, 60)
    return actions


def _clogs(rng: random.Random, node_count: int, fault_ticks: int) -> list[FaultAction]:
    actions: list[FaultAction] = []
    if node_count < 2:
        return actions
    for _ in range(rng.randint(0, 2)):
        source, target = rng.sample(range(node_count), 2)
        start = rng.randrange(fault_ticks)
        end = min(start + rng.randint(10, 100), fault_ticks - 1)
        actions.append(FaultAction(at_tick=start, kind="clog", node=source, target=target))
        actions.append(FaultAction(at_tick=end, kind="unclog", node=source, target=target))
    return actions


def _skews(rng: random.Random, node_count: int, fault_ticks: int) -> list[FaultAction]:
    """Sometimes one node's clock runs slow (1 tick in 2..5) for a while."""
    if rng.random() >= 0.3:
        return []
    node = rng.randrange(node_count)
    start = rng.randrange(fault_ticks)
    end = min(start + rng.randint(20, 200), fault_ticks - 1)
    return [
        FaultAction(at_tick=start, kind="skew", node=node, target=rng.randint(2, 5)),
        FaultAction(at_tick=end, kind="skew", node=node, target=1),
    ]


def _crashes(
    rng: random.Random,
    node_count: int,
    fault_ticks: int,
    *,
    budget: int,
    spare: bool,
    amnesia_probability: float,
) -> list[FaultAction]:
    """Crash up to `budget` distinct nodes; each may come back during the faulty phase
    (sometimes with amnesia: it stays faulty, but it is one of the `budget` nodes) or stay
    down until the liveness phase restarts it. A byzantine node 0 is never crashed."""
    if budget <= 0:
        return []
    candidates = list(range(1 if spare else 0, node_count))
    actions: list[FaultAction] = []
    for node in rng.sample(candidates, min(rng.randint(0, budget), len(candidates))):
        start = rng.randrange(fault_ticks)
        actions.append(FaultAction(at_tick=start, kind="crash", node=node))
        end = start + rng.randint(10, fault_ticks)
        if end < fault_ticks:
            amnesia = rng.random() < amnesia_probability
            actions.append(FaultAction(at_tick=end, kind="restart", node=node, amnesia=amnesia))
    return actions


def build_cluster(
    scenario: Scenario,
    make_factory: Callable[[ChainParams], EngineFactory],
    *,
    make_codec: Callable[[ChainParams], MessageCodec] | None = None,
    wrappers: Mapping[str, ByzantineWrapper] | None = None,
    pipeline_depth: int = 1,
) -> Cluster:
    byzantine: dict[int, ByzantineWrapper] = {}
    if scenario.byzantine is not None:
        assert wrappers is not None, f"scenario wants a {scenario.byzantine} node"
        assert scenario.byzantine in wrappers, scenario.byzantine
        byzantine[0] = wrappers[scenario.byzantine]
    config = ClusterConfig(
        seed=scenario.seed,
        node_count=scenario.node_count,
        faults=scenario.faults,
        pipeline_depth=pipeline_depth,
        exec_delay_ticks=scenario.exec_delay_ticks,
    )
    return Cluster(config, make_factory, make_codec=make_codec, byzantine=byzantine)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioReport:
    heights: tuple[int, ...]
    ticks: int
    liveness_ticks: int  # how long the healed cluster took to settle
    committed_txs: int


def run_scenario(cluster: Cluster, scenario: Scenario) -> ScenarioReport:
    """Run both phases; raises SimulationFailure (with the seed) on any broken property."""
    actions = list(scenario.actions)
    for _ in range(scenario.fault_ticks):
        while actions and actions[0].at_tick <= cluster.now:
            _apply(cluster, actions.pop(0))
        if cluster.now % scenario.burst_every_ticks == 0:
            cluster.submit(
                scenario.txs_per_burst, resubmit_probability=scenario.resubmit_probability
            )
        cluster.tick()
    cluster.check_safety()
    cluster.heal()
    for node in cluster.nodes:
        cluster.skew_clock(node.node_id, tick_every=1)
        if not node.alive:
            cluster.restart(node.node_id)
    settle = checkers.check_liveness(cluster, ticks_max=scenario.liveness_ticks)
    cluster.check_safety()
    reference = max(cluster.honest(), key=lambda node: node.height)
    return ScenarioReport(
        heights=tuple(cluster.heights()),
        ticks=cluster.now,
        liveness_ticks=settle,
        committed_txs=sum(len(block.executed_tx_hashes) for block in reference.app.blocks),
    )


def _apply(cluster: Cluster, action: FaultAction) -> None:
    log.debug("t%d %s", cluster.now, action)
    if action.kind == "partition":
        cluster.partition(action.groups)
    elif action.kind == "heal":
        cluster.network.heal_partitions()
    elif action.kind == "crash" and cluster.nodes[action.node].alive:
        cluster.crash(action.node)
    elif action.kind == "restart" and not cluster.nodes[action.node].alive:
        cluster.restart(action.node, amnesia=action.amnesia)
    elif action.kind == "clog":
        cluster.network.clog(action.node, action.target)
    elif action.kind == "unclog":
        cluster.network.unclog(action.node, action.target, now=cluster.now)
    elif action.kind == "skew":
        cluster.skew_clock(action.node, tick_every=action.target)
