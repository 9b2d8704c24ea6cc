"""Soak (by hand: `pytest -m soak tests/cluster/test_crash_soak.py`): four real PBFT
validators (and, in a second case, three Raft nodes) under a steady broadcast_tx_commit
load, and one of them killed with SIGKILL again and again — every other time the primary
or leader — then restarted, `SOAK_KILLS` times (default 8).
Each kill lands at a moment of the seeded schedule, so it hits the driver at whatever it
was doing: a synced consensus write covering several steps (group commit), sends held
behind it, a commit being stored. After every restart the victim must catch up while the
others keep committing; at the end every node holds the same chain and every acknowledged
tx. Prints one line per kill and the totals (the figures the notes quote)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from tests.cluster.cluster_harness import (
    LocalCluster,
    assert_converged,
    commit_load,
    running_cluster,
    wait_until,
)

KILLS = int(os.environ.get("SOAK_KILLS", "8"))
SEED = int(os.environ.get("SOAK_SEED", "1207"))

pytestmark = [pytest.mark.soak, pytest.mark.timeout(60 + 40 * KILLS)]


@pytest.mark.parametrize(("consensus", "nodes"), [("pbft", 4), ("raft", 3)])
async def test_repeated_kill9_under_load_loses_nothing_and_never_forks(
    tmp_path: Path, consensus: str, nodes: int
) -> None:
    async with running_cluster(tmp_path / "net", nodes=nodes, consensus=consensus) as cluster:
        await _soak(cluster, list(range(nodes)), consensus)


async def _soak(cluster: LocalCluster, nodes: list[int], consensus: str) -> None:
    schedule = random.Random(SEED)
    stop = asyncio.Event()
    victims: set[int] = set()

    load = asyncio.create_task(
        commit_load(
            cluster,
            cluster.tx_factory("soak"),
            cluster.running_indices,
            stop=stop,
            txs_max=1_000_000,
            duration_s_max=40 * KILLS + 30,
            concurrency=16,
        )
    )
    try:
        await asyncio.sleep(2.0)
        for kill in range(KILLS):
            leader = await cluster.leader_seen_by(nodes[0])
            victim = leader if kill % 2 == 0 else schedule.choice([i for i in nodes if i != leader])
            victims.add(victim)
            others = [i for i in nodes if i != victim]
            await asyncio.sleep(schedule.uniform(0.0, 1.0))  # anywhere in a block's life
            cluster.kill(victim)
            before = max(await cluster.heights(others))

            async def others_commit(floor: int = before, others: list[int] = others) -> bool:
                return min(await cluster.heights(others)) > floor + 2

            resumed_s = await wait_until(others_commit, timeout_s=30, what="commits without victim")
            await asyncio.sleep(schedule.uniform(0.5, 2.0))
            target = max(await cluster.heights(others))
            cluster.start(victim)
            started = time.monotonic()
            await cluster.wait_healthy([victim])
            await cluster.wait_height([victim], target, timeout_s=30)
            print(
                f"\nkill {kill + 1}/{KILLS}: node{victim}{' (leader)' if victim == leader else ''}"
                f" at height {before}; the others committed again after {resumed_s:.1f} s;"
                f" caught up to {target} {time.monotonic() - started:.1f} s after restart"
            )
            await asyncio.sleep(1.0)
    finally:
        stop.set()
        report = await load
    assert report.acknowledged, report.errors[:5]
    stray = [error for error in report.errors if int(error[4 : error.index(":")]) not in victims]
    assert not stray, stray[:5]
    top = await assert_converged(cluster, nodes, report.acknowledged, timeout_s=30)
    print(
        f"\nsoak {consensus} x{len(nodes)}: {KILLS} kills (seed {SEED}), "
        f"{len(report.acknowledged)} txs acknowledged "
        f"({report.rate_per_s():.0f} tx/s), {len(report.errors)} errors at the victims; "
        f"heights 1..{top} identical on all {len(nodes)}"
    )
