"""Standby txs on real processes: txs sent only to one backup commit (the backup floods
them; the primary admits them; the other backups keep them in standby and relay nothing),
then the primary is frozen with SIGSTOP and txs sent only to that backup still commit
under the new primary, and every node ends on the same blocks and app hashes."""

from __future__ import annotations

import pytest

from tests.cluster.cluster_harness import (
    LocalCluster,
    all_committed,
    assert_same_chain,
    assert_txs_found,
    metric_value,
    send_round_robin,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

NODES = list(range(4))


async def test_txs_sent_to_one_backup_commit_before_and_after_the_primary_freezes(
    cluster4: LocalCluster,
) -> None:
    primary = await cluster4.leader_seen_by(0)
    backup = (primary + 1) % 4
    others = [i for i in NODES if i != primary]
    factory = cluster4.tx_factory("standby")

    before = await send_round_robin(cluster4, [backup], factory.batch(20), batch_txs=10)

    async def before_committed() -> bool:
        return await all_committed(cluster4, backup, before)

    await wait_until(before_committed, timeout_s=20, interval_s=0.2, what="first txs committed")
    # The backups that were not the txs' entry point never admitted them in full.
    bystander = next(i for i in others if i != backup)
    unconfirmed = await cluster4.client(bystander).call("num_unconfirmed_txs", {})
    assert int(unconfirmed["n_txs"]) == 0

    cluster4.pause(primary)
    try:
        after = await send_round_robin(cluster4, [backup], factory.batch(20), batch_txs=10)

        async def after_committed() -> bool:
            return await all_committed(cluster4, bystander, after)

        await wait_until(
            after_committed, timeout_s=40, interval_s=0.2, what="txs committed in a new view"
        )
        leaders = {await cluster4.leader_seen_by(i) for i in others}
        assert leaders != {primary}, "a new primary ordered the txs"
    finally:
        cluster4.resume(primary)
    top = max(await cluster4.heights(others))
    await cluster4.wait_height(NODES, top, timeout_s=30)
    await assert_same_chain(cluster4, NODES, top)
    await assert_txs_found(cluster4, NODES, before + after)
    # Commits removed every standby copy at the nodes that were up throughout (the thawed
    # primary may hold late copies that reached it after their block: bounded, harmless).
    for index in others:
        text = await cluster4.metrics_text(index)
        assert metric_value(text, "seoulchain_mempool_standby_txs") == 0, f"node{index}"
