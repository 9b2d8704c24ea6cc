"""Seed selection from the environment, and scenario generation from a seed."""

from __future__ import annotations

import pytest

from consensus.sim.scenario import build_cluster, generate_scenario, run_scenario
from consensus.sim.seeds import parse_seeds, seeds_from_env
from consensus.sim.toy import ToyCodec, toy_factory
from protocol.quorum import max_faulty


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("7", [7]), ("0-3", [0, 1, 2, 3]), ("1,2,40-42", [1, 2, 40, 41, 42]), (" 5 , 6 ", [5, 6])],
)
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "1-x", ","])
def test_parse_seeds_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="seed"):
        parse_seeds(text)


def test_seeds_from_env_prefers_sim_seed_then_sim_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIM_SEED", raising=False)
    monkeypatch.delenv("SIM_SEEDS", raising=False)
    assert seeds_from_env(range(3)) == [0, 1, 2]
    monkeypatch.setenv("SIM_SEEDS", "10-12")
    assert seeds_from_env(range(3)) == [10, 11, 12]
    monkeypatch.setenv("SIM_SEED", "99")
    assert seeds_from_env(range(3)) == [99]


def test_same_seed_same_scenario_and_seeds_vary() -> None:
    first = generate_scenario(3, node_count=4, byzantine_kinds=("silent",))
    assert first == generate_scenario(3, node_count=4, byzantine_kinds=("silent",))
    described = {generate_scenario(s, node_count=4).describe() for s in range(20)}
    assert len(described) == 20


@pytest.mark.parametrize("node_count", [4, 7])
def test_scenarios_never_exceed_f_faulty_nodes(node_count: int) -> None:
    f = max_faulty(node_count)
    kinds_seen: set[str] = set()
    for seed in range(200):
        scenario = generate_scenario(seed, node_count=node_count, byzantine_kinds=("silent",))
        down: set[int] = set()
        worst = 0
        for action in scenario.actions:
            kinds_seen.add(action.kind)
            if action.kind == "crash":
                down.add(action.node)
            elif action.kind == "restart":
                down.discard(action.node)
            worst = max(worst, len(down))
        byzantine = scenario.byzantine is not None
        assert worst + byzantine <= f, scenario.describe()
        if byzantine:
            assert all(a.node != 0 for a in scenario.actions if a.kind == "crash")
        kinds_seen.add(f"byzantine={byzantine}")
    assert kinds_seen >= {"partition", "heal", "crash", "restart", "clog", "unclog", "skew"}
    assert {"byzantine=True", "byzantine=False"} <= kinds_seen


@pytest.mark.parametrize("seed", seeds_from_env(range(12)))
def test_toy_engine_survives_mixed_scenarios(seed: int) -> None:
    """The harness end to end: the toy engine under drops, delays, duplicates, partitions,
    clogs and crash/restart (no byzantine nodes: it has no view change)."""
    scenario = generate_scenario(seed, node_count=4, fault_ticks=300, liveness_ticks=1_000)
    cluster = build_cluster(scenario, toy_factory, make_codec=ToyCodec)
    report = run_scenario(cluster, scenario)
    assert len(set(report.heights)) == 1
    assert report.committed_txs > 0
