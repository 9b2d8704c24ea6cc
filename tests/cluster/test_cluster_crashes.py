"""Issue 4, scenarios 2-4 on real processes: a backup killed with SIGKILL under load and
restarted; the primary frozen with SIGSTOP (view change) and thawed; two of four killed
(no quorum: progress stops, nothing diverges) and restarted.

Each test measures and prints its figures (docs/OPERATIONS.md quotes them)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.cluster.cluster_harness import (
    LocalCluster,
    all_committed,
    assert_converged,
    assert_same_chain,
    assert_txs_found,
    commit_load,
    committed_subset,
    sync_load,
    wait_until,
)

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

NODES = list(range(4))


async def test_backup_killed_under_load_restarts_and_loses_nothing(
    cluster4: LocalCluster,
) -> None:
    leader = await cluster4.leader_seen_by(0)
    victim = (leader + 1) % 4
    factory = cluster4.tx_factory("kill9")
    stop = asyncio.Event()

    load = asyncio.create_task(
        commit_load(
            cluster4, factory, cluster4.running_indices, stop=stop, txs_max=3_000, duration_s_max=40
        )
    )
    await asyncio.sleep(2.0)
    cluster4.kill(victim)
    killed_at = time.monotonic()
    height_at_kill = max(await cluster4.heights([i for i in NODES if i != victim]))
    await asyncio.sleep(3.0)
    others = [i for i in NODES if i != victim]
    height_while_down = max(await cluster4.heights(others))
    assert height_while_down > height_at_kill, "3 of 4 stopped committing after one crash"
    target = max(await cluster4.heights(others))
    cluster4.start(victim)
    restarted_at = time.monotonic()
    await cluster4.wait_healthy([victim])
    await cluster4.wait_height([victim], target, timeout_s=30)
    catch_up_s = time.monotonic() - restarted_at  # under load, from process start
    await asyncio.sleep(1.0)
    stop.set()
    report = await load
    assert report.acknowledged, f"no tx acknowledged; errors: {report.errors[:5]}"
    assert all(error.startswith(f"node{victim}:") for error in report.errors), report.errors
    top = await assert_converged(cluster4, NODES, report.acknowledged, timeout_s=30)
    print(
        f"\nscenario 2: victim node{victim}; down {restarted_at - killed_at:.1f} s; "
        f"{len(report.acknowledged)} acknowledged, {len(report.errors)} errors "
        f"({report.rate_per_s():.0f} tx/s commit-acknowledged under load); "
        f"caught up {catch_up_s:.1f} s after restart; heights 1..{top} identical"
    )


async def test_primary_killed_under_load_view_change_and_restart(cluster4: LocalCluster) -> None:
    """kill -9 of the primary while clients wait on broadcast_tx_commit at every node: the
    backups change view and keep acknowledging; the old primary restarts and follows; no
    acknowledged tx is lost."""
    primary = await cluster4.leader_seen_by(0)
    old_round = int((await cluster4.status(primary))["consensus"]["round"])
    others = [i for i in NODES if i != primary]
    stop = asyncio.Event()

    load = asyncio.create_task(
        commit_load(
            cluster4,
            cluster4.tx_factory("kill-primary"),
            cluster4.running_indices,
            stop=stop,
            txs_max=3_000,
            duration_s_max=40,
        )
    )
    await asyncio.sleep(2.0)
    cluster4.kill(primary)
    killed_at = time.monotonic()
    height_at_kill = max(await cluster4.heights(others))

    async def new_view_commits() -> bool:
        statuses = [await cluster4.status(i) for i in others]
        return (
            all(int(s["consensus"]["round"]) > old_round for s in statuses)
            and min(int(s["sync_info"]["latest_block_height"]) for s in statuses) > height_at_kill
        )

    recovered_s = await wait_until(new_view_commits, timeout_s=30, what="commits in new view")
    await asyncio.sleep(2.0)
    target = max(await cluster4.heights(others))
    cluster4.start(primary)
    restarted_at = time.monotonic()
    await cluster4.wait_healthy([primary])
    await cluster4.wait_height([primary], target, timeout_s=30)
    catch_up_s = time.monotonic() - restarted_at
    await asyncio.sleep(1.0)
    stop.set()
    report = await load
    assert report.acknowledged, report.errors[:5]
    assert all(error.startswith(f"node{primary}:") for error in report.errors), report.errors
    top = await assert_converged(cluster4, NODES, report.acknowledged, timeout_s=30)
    print(
        f"\nscenario 2b: primary node{primary} killed; new view committing "
        f"{recovered_s:.1f} s later; down {restarted_at - killed_at:.1f} s; "
        f"{len(report.acknowledged)} acknowledged ({report.rate_per_s():.0f} tx/s), "
        f"{len(report.errors)} errors (all at the victim); old primary caught up "
        f"{catch_up_s:.1f} s after restart; heights 1..{top} identical"
    )


async def test_frozen_primary_triggers_view_change_then_rejoins(cluster4: LocalCluster) -> None:
    """Fresh txs keep arriving at the backups (admission-only load, so the sender never
    blocks on one tx); the new primary must commit them and the old one must follow."""
    factory = cluster4.tx_factory("sigstop")
    warm = await cluster4.client(1).broadcast_tx_commit(factory.make())
    assert warm["tx_result"]["code"] == 0
    primary = await cluster4.leader_seen_by(0)
    old_round = int((await cluster4.status(primary))["consensus"]["round"])
    others = [i for i in NODES if i != primary]
    stop = asyncio.Event()

    cluster4.pause(primary)
    paused_at = time.monotonic()
    load = asyncio.create_task(
        sync_load(cluster4, factory, lambda: others, stop=stop, txs_max=5_000, duration_s_max=40)
    )

    async def view_changed() -> bool:
        for index in others:
            consensus = (await cluster4.status(index))["consensus"]
            if int(consensus["round"]) <= old_round or int(consensus["leader"]) == primary:
                return False
        return True

    view_change_s = await wait_until(view_changed, timeout_s=30, what="view change")
    new_view_at = time.monotonic()
    height_at_view_change = max(await cluster4.heights(others))
    await asyncio.sleep(3.0)
    target = max(await cluster4.heights(others))
    assert target > height_at_view_change, "no commit in the new view"
    cluster4.resume(primary)
    resumed_at = time.monotonic()
    await cluster4.wait_height([primary], target, timeout_s=30)
    rejoin_s = time.monotonic() - resumed_at  # under load, from SIGCONT
    await asyncio.sleep(1.0)
    stop.set()
    sent = await load
    ended_at = time.monotonic()

    fresh = [item.tx_hash for item in sent if item.sent_s >= new_view_at]
    committed = await committed_subset(cluster4, others[0], fresh)
    assert committed, f"none of {len(fresh)} txs sent in the new view committed"
    top = await assert_converged(cluster4, NODES, committed, timeout_s=30)
    status = (await cluster4.status(primary))["consensus"]
    assert int(status["round"]) > old_round, "old primary did not move to the new view"
    assert int(status["leader"]) != primary
    print(
        f"\nscenario 3: primary node{primary} frozen {resumed_at - paused_at:.1f} s; "
        f"view change on all others {view_change_s:.1f} s after SIGSTOP; "
        f"{len(committed)} of {len(fresh)} txs sent in the new view committed "
        f"({len(committed) / (ended_at - new_view_at):.0f} tx/s); old primary caught up "
        f"{rejoin_s:.1f} s after SIGCONT; heights 1..{top} identical"
    )


async def test_two_of_four_down_stops_progress_then_resumes(cluster4: LocalCluster) -> None:
    """With 2 of 4 down nothing commits and nothing diverges; after both restart, the txs
    submitted meanwhile commit on all four. (Regression: before commit 14c5235 a restarted
    backup reaped those txs into its "I hold txs" block, became primary at the same height,
    overwrote its proposal record for that height (now node/custody.py) and never
    proposed them.)"""
    factory = cluster4.tx_factory("quorum")
    warm = await cluster4.client(0).broadcast_tx_commit(factory.make())
    assert warm["tx_result"]["code"] == 0
    primary = await cluster4.leader_seen_by(0)
    victims = [i for i in NODES if i != primary][:2]
    survivors = [i for i in NODES if i not in victims]
    for victim in victims:
        cluster4.kill(victim)
    height_at_kill = max(await cluster4.heights(survivors))

    pending = factory.batch(20)
    for number, tx in enumerate(pending):
        answer = await cluster4.client(survivors[number % 2]).broadcast_tx_sync(tx)
        assert answer["code"] == 0, answer
    await asyncio.sleep(5.0)
    heights = await cluster4.heights(survivors)
    assert max(heights) == height_at_kill, f"committed without a quorum: {heights}"
    stalled_top = min(heights)
    await assert_same_chain(cluster4, survivors, stalled_top)

    for victim in victims:
        cluster4.start(victim)
    restarted_at = time.monotonic()
    await cluster4.wait_healthy(victims)
    await cluster4.wait_height(victims, stalled_top, timeout_s=20)
    await assert_same_chain(cluster4, NODES, stalled_top)
    hashes = [tx.hash().hex() for tx in pending]

    async def resumed() -> bool:
        return await all_committed(cluster4, survivors[0], hashes)

    await wait_until(resumed, timeout_s=40, interval_s=0.2, what="progress after restart")
    resume_s = time.monotonic() - restarted_at
    top = await assert_converged(cluster4, NODES, hashes, timeout_s=30)
    assert top > height_at_kill
    print(
        f"\nscenario 4: killed node{victims[0]} and node{victims[1]}; no commit for 5 s "
        f"with 20 txs pending (height stayed {height_at_kill}); after restart the pending "
        f"txs committed in {resume_s:.1f} s; heights 1..{top} identical on all 4"
    )


async def test_txs_waiting_at_backups_commit_after_view_change(cluster4: LocalCluster) -> None:
    """A burst admitted by the backups while the primary is frozen, and nothing after it:
    the new primary must order the burst (the same in-flight leak as above made this stall
    forever before commit 14c5235)."""
    factory = cluster4.tx_factory("burst")
    warm = await cluster4.client(1).broadcast_tx_commit(factory.make())
    assert warm["tx_result"]["code"] == 0
    primary = await cluster4.leader_seen_by(0)
    others = [i for i in NODES if i != primary]
    cluster4.pause(primary)
    burst = factory.batch(30)
    for number, start in enumerate(range(0, 30, 10)):
        results = await cluster4.client(others[number]).broadcast_txs(burst[start : start + 10])
        assert all(result["code"] == 0 for result in results), results
    hashes = [tx.hash().hex() for tx in burst]

    async def burst_committed() -> bool:
        return await all_committed(cluster4, others[0], hashes)

    burst_s = await wait_until(
        burst_committed, timeout_s=20, interval_s=0.2, what="burst committed"
    )
    cluster4.resume(primary)
    top = max(await cluster4.heights(others))
    await cluster4.wait_height(NODES, top, timeout_s=20)
    await assert_same_chain(cluster4, NODES, top)
    await assert_txs_found(cluster4, NODES, hashes)
    print(f"\nscenario 3b: 30 txs held by backups committed {burst_s:.1f} s after submission")
