"""Issue 4, scenario 5: hostile connections to a validator of a running 4-node cluster are
refused and counted, and the cluster keeps committing throughout.

Attacks (all against node0, with commit-acknowledged load running on every node):
unknown Ed25519 key with a proper handshake; garbage instead of a handshake; an oversized
length prefix; a flood of junk pre-handshake connections; and, from an observer key the
validators allow (p2p.allowed_peer_keys), authenticated junk: consensus messages from a
non-validator, an oversized frame after the handshake, and a flood of records on an
unknown channel (disconnected and banned)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from node.config import Config
from tests.cluster.attack_client import (
    Session,
    closed_by_peer,
    garbage_hello,
    handshake_as,
    junk_flood,
    oversized_prefix,
    send_raw_and_wait_close,
)
from tests.cluster.cluster_harness import (
    LocalCluster,
    assert_converged,
    commit_load,
    metric_value,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

NODES = list(range(4))
TARGET = 0
CONSENSUS_CHANNEL = 1  # node/network.py CHANNEL_CONSENSUS
UNKNOWN_CHANNEL = 200


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[LocalCluster, SigningKey]]:
    """Four validators that also allow one observer key (the "authenticated attacker")."""
    observer = SigningKey.generate()

    def allow_observer(config: Config) -> None:
        config.p2p.allowed_peer_keys = [bytes(observer.verify_key).hex()]

    cluster = LocalCluster.create(tmp_path / "net", nodes=4, tune=allow_observer)
    try:
        for index in NODES:
            cluster.start(index)
        await cluster.wait_healthy(NODES)
        yield cluster, observer
    finally:
        cluster.shutdown()
        await cluster.close_clients()


async def net_info(cluster: LocalCluster, index: int) -> dict[str, object]:
    result: dict[str, object] = await cluster.client(index).call("net_info")
    return result


async def validator_peers(cluster: LocalCluster, index: int) -> int:
    peers = (await net_info(cluster, index))["peers"]
    assert isinstance(peers, list)
    return sum(1 for peer in peers if peer["is_validator"])


async def test_attacks_are_refused_and_the_cluster_keeps_committing(
    guarded: tuple[LocalCluster, SigningKey],
) -> None:
    cluster, observer = guarded
    chain_id = cluster.genesis.chain_id
    port = cluster.ports(TARGET).p2p
    stop = asyncio.Event()
    load = asyncio.create_task(
        commit_load(
            cluster,
            cluster.tx_factory("attacks"),
            lambda: NODES,
            stop=stop,
            txs_max=3_000,
            duration_s_max=60,
        )
    )
    height_before = await cluster.height(TARGET)

    stranger = await handshake_as(SigningKey.generate(), port, chain_id=chain_id)
    assert await closed_by_peer(stranger.reader, timeout_s=5), "unknown key kept connected"
    stranger.close()
    assert await send_raw_and_wait_close(port, garbage_hello(), timeout_s=5)
    assert await send_raw_and_wait_close(port, oversized_prefix(), timeout_s=5)
    closed = await junk_flood(port, connections=200, concurrency=25)
    assert closed == 200, f"only {closed} of 200 junk connections were closed by the node"

    rejected_before = (await net_info(cluster, TARGET))["rejected"]
    assert isinstance(rejected_before, dict)
    insider = await handshake_as(observer, port, chain_id=chain_id)
    for _ in range(50):
        insider.send_records([(CONSENSUS_CHANNEL, os.urandom(100))])

    async def counted() -> bool:
        rejected = (await net_info(cluster, TARGET))["rejected"]
        assert isinstance(rejected, dict)
        return bool(
            rejected.get("not_a_validator", 0) - rejected_before.get("not_a_validator", 0) >= 50
        )

    await wait_until(counted, timeout_s=10, what="50 non-validator consensus messages counted")
    insider.writer.write(oversized_prefix())
    assert await closed_by_peer(insider.reader, timeout_s=5), "oversized frame not refused"
    insider.close()

    observer_hex = bytes(observer.verify_key).hex()
    admitted: list[Session] = []

    async def ban_over() -> bool:
        # The node banned the observer (1 s, doubling); a handshake during the ban is cut.
        session = await handshake_as(observer, port, chain_id=chain_id)
        await asyncio.sleep(0.2)
        peers = (await net_info(cluster, TARGET))["peers"]
        assert isinstance(peers, list)
        if any(peer["node_id"] == observer_hex for peer in peers):
            admitted.append(session)
            return True
        session.close()
        return False

    await wait_until(ban_over, timeout_s=20, interval_s=0.5, what="observer ban over")
    insider = admitted[0]
    insider.send_records([(UNKNOWN_CHANNEL, b"x")] * 150)
    assert await closed_by_peer(insider.reader, timeout_s=5), "unknown-channel flood not cut"
    insider.close()
    log_text = cluster.log_text(TARGET)
    for reason in ("unknown_key", "bad_handshake", "oversized_frame"):
        assert f"({reason})" in log_text, f"no refusal logged for {reason}"
    assert "invalid messages" in log_text, "unknown-channel flood not counted as misbehaviour"
    assert log_text.count(f"peer {observer_hex[:16]} banned") == 2

    height_mid = await cluster.height(TARGET)
    await asyncio.sleep(1.0)
    stop.set()
    report = await load
    assert not report.errors, report.errors[:5]
    assert len(report.acknowledged) > 0
    assert height_mid > height_before, "no commit while under attack"
    assert await validator_peers(cluster, TARGET) == 3
    await assert_converged(cluster, NODES, report.acknowledged, timeout_s=20)
    print(
        f"\nscenario 5: unknown key, bad hello, oversized prefix, 200 junk connections, "
        f"50 non-validator messages, oversized and unknown-channel frames refused; "
        f"{len(report.acknowledged)} "
        f"txs committed meanwhile ({report.rate_per_s():.0f} tx/s), 0 errors"
    )


async def test_refused_handshakes_show_in_metrics(
    guarded: tuple[LocalCluster, SigningKey],
) -> None:
    cluster, _ = guarded
    port = cluster.ports(TARGET).p2p
    stranger = await handshake_as(SigningKey.generate(), port, chain_id=cluster.genesis.chain_id)
    assert await closed_by_peer(stranger.reader, timeout_s=5)
    stranger.close()
    assert await send_raw_and_wait_close(port, oversized_prefix(), timeout_s=5)
    text = await cluster.metrics_text(TARGET)
    assert metric_value(text, "seoulchain_p2p_peers") == 3
    assert metric_value(text, "seoulchain_p2p_dropped_total", 'reason="unknown_key"') >= 1
    assert metric_value(text, "seoulchain_p2p_dropped_total", 'reason="oversized_frame"') >= 1
