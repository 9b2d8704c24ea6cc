"""The deterministic simulator: any engine of consensus/types.py, N nodes, one seeded network
and a virtual clock, with no asyncio at all. docs/SIMULATION.md explains how to run and
reproduce it; the names below are what tests use."""

from consensus.sim.checkers import OneLeaderPerRound, check_liveness, check_safety
from consensus.sim.cluster import Cluster, ClusterConfig
from consensus.sim.failure import SimulationFailure
from consensus.sim.network import NetworkFaults
from consensus.sim.node import ByzantineWrapper, ChainParams, EngineFactory
from consensus.sim.scenario import Scenario, build_cluster, generate_scenario, run_scenario
from consensus.sim.seeds import seeds_from_env

__all__ = [
    "ByzantineWrapper",
    "ChainParams",
    "Cluster",
    "ClusterConfig",
    "EngineFactory",
    "NetworkFaults",
    "OneLeaderPerRound",
    "Scenario",
    "SimulationFailure",
    "build_cluster",
    "check_liveness",
    "check_safety",
    "generate_scenario",
    "run_scenario",
    "seeds_from_env",
]
