"""Issue 4, scenario 6: p2p/faultproxy.py between node3 and the rest of a real 4-node
cluster. Delay: the cluster still commits. Partition node3 away: the other three (a quorum
of 4) keep committing. Heal: node3 catches up and holds the same chain.

Wiring: every connection that involves node3 crosses a proxy. The others reach node3 through
proxy P3 (their persistent_peers entry for node3 points at it); node3 reaches node k through
proxy Qk (its own persistent_peers). Config entries override the genesis p2p_address of the
same key (node/p2p_setup.py build_p2p_node), so genesis stays byte-identical on all nodes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.config import load_config, write_config
from p2p.faultproxy import FaultProxy
from tests.cluster.cluster_harness import (
    LocalCluster,
    assert_converged,
    commit_load,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

NODES = list(range(4))
ISOLATED = 3
OTHERS = [0, 1, 2]


class ProxiedCluster:
    def __init__(self, cluster: LocalCluster, proxies: list[FaultProxy]) -> None:
        self.cluster = cluster
        self.proxies = proxies

    def set_delay(self, delay_ms: float, jitter_ms: float) -> None:
        for proxy in self.proxies:
            proxy.set_delay(delay_ms, jitter_ms=jitter_ms)

    def partition(self) -> None:
        for proxy in self.proxies:
            proxy.partition()

    def heal(self) -> None:
        for proxy in self.proxies:
            proxy.heal()


async def start_proxy(port: int, seed: int) -> FaultProxy:
    proxy = FaultProxy(target_host="127.0.0.1", target_port=port, rng=random.Random(seed))
    await proxy.start()
    return proxy


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[ProxiedCluster]:
    cluster = LocalCluster.create(tmp_path / "net", nodes=4)
    proxies: list[FaultProxy] = []
    try:
        to_isolated = await start_proxy(cluster.ports(ISOLATED).p2p, seed=3)
        proxies.append(to_isolated)
        from_isolated = {}
        for index in OTHERS:
            from_isolated[index] = await start_proxy(cluster.ports(index).p2p, seed=index)
            proxies.append(from_isolated[index])
        keys = {v.name: v.public_key.hex() for v in cluster.genesis.validators}
        for index in NODES:
            home = cluster.nodes[index].home
            config = load_config(home)
            if index == ISOLATED:
                config.p2p.persistent_peers = [
                    f"{keys[f'node{k}']}@127.0.0.1:{from_isolated[k].port}" for k in OTHERS
                ]
            else:
                config.p2p.persistent_peers = [
                    peer
                    for peer in config.p2p.persistent_peers
                    if not peer.startswith(keys[f"node{ISOLATED}"])
                ] + [f"{keys[f'node{ISOLATED}']}@127.0.0.1:{to_isolated.port}"]
            write_config(home, config, overwrite=True)
            cluster.nodes[index].config = config
        for index in NODES:
            cluster.start(index)
        await cluster.wait_healthy(NODES)
        yield ProxiedCluster(cluster, proxies)
    finally:
        cluster.shutdown()
        await cluster.close_clients()
        for proxy in proxies:
            await proxy.stop()


async def wait_isolated_connected(cluster: LocalCluster) -> None:
    async def connected() -> bool:
        net = await cluster.client(ISOLATED).call("net_info")
        return int(net["n_peers"]) == 3

    await wait_until(connected, timeout_s=20, what="node3 connected via proxies")


async def test_delay_partition_heal(proxied: ProxiedCluster) -> None:
    cluster = proxied.cluster
    factory = cluster.tx_factory("proxy")

    await wait_isolated_connected(cluster)
    stop = asyncio.Event()

    # 1. Delay every link of node3 by 50 ms +- 20 ms: the cluster, node3 included, commits.
    proxied.set_delay(50, 20)
    delayed = await commit_load(
        cluster, factory, lambda: NODES, stop=stop, txs_max=400, duration_s_max=5
    )
    assert delayed.acknowledged, delayed.errors[:5]
    assert not delayed.errors, delayed.errors[:5]
    proxied.set_delay(0, 0)

    # 2. Partition node3 away: 3 of 4 are a quorum and keep committing.
    proxied.partition()
    partitioned_at = time.monotonic()
    height_at_partition = max(await cluster.heights(OTHERS))
    isolated_height = await cluster.height(ISOLATED)
    during = await commit_load(
        cluster, factory, lambda: OTHERS, stop=stop, txs_max=2_000, duration_s_max=5
    )
    assert during.acknowledged, during.errors[:5]
    assert not during.errors, during.errors[:5]
    top_during = max(await cluster.heights(OTHERS))
    assert top_during > height_at_partition
    assert await cluster.height(ISOLATED) <= max(isolated_height, height_at_partition)

    # 3. Heal: node3 catches up with the others' height and holds the same chain.
    target = max(await cluster.heights(OTHERS))
    proxied.heal()
    healed_at = time.monotonic()
    await cluster.wait_height([ISOLATED], target, timeout_s=40)
    catch_up_s = time.monotonic() - healed_at
    after = await commit_load(
        cluster, factory, lambda: NODES, stop=stop, txs_max=100, duration_s_max=3
    )
    assert after.acknowledged, after.errors[:5]
    acknowledged = delayed.acknowledged + during.acknowledged + after.acknowledged
    top = await assert_converged(cluster, NODES, acknowledged, timeout_s=20)
    print(
        f"\nscenario 6: delay 50+-20 ms: {delayed.rate_per_s():.0f} tx/s; partitioned "
        f"{healed_at - partitioned_at:.1f} s: others {during.rate_per_s():.0f} tx/s "
        f"(height {height_at_partition}->{top_during}); node3 caught up "
        f"{target - isolated_height} blocks in {catch_up_s:.1f} s after heal; "
        f"after heal {after.rate_per_s():.0f} tx/s; heights 1..{top} identical"
    )


async def test_partition_longer_than_idle_timeout(proxied: ProxiedCluster) -> None:
    """A partition longer than the p2p idle timeout (10 s) ends node3's connections; after
    the heal node3 must redial through the proxies, catch up and follow new commits."""
    cluster = proxied.cluster
    factory = cluster.tx_factory("long-partition")
    stop = asyncio.Event()
    await wait_isolated_connected(cluster)
    proxied.partition()
    partitioned_at = time.monotonic()
    during = await commit_load(
        cluster, factory, lambda: OTHERS, stop=stop, txs_max=2_000, duration_s_max=13
    )
    assert during.acknowledged, during.errors[:5]
    assert not during.errors, during.errors[:5]
    net = await cluster.client(ISOLATED).call("net_info")
    peers_while_cut = int(net["n_peers"])
    assert peers_while_cut == 0, "connections through a 13 s black hole outlived the timeout"
    target = max(await cluster.heights(OTHERS))
    proxied.heal()
    healed_at = time.monotonic()
    await cluster.wait_height([ISOLATED], target, timeout_s=40)
    catch_up_s = time.monotonic() - healed_at
    after = await commit_load(
        cluster, factory, lambda: NODES, stop=stop, txs_max=50, duration_s_max=3
    )
    assert after.acknowledged, after.errors[:5]
    top = await assert_converged(
        cluster, NODES, during.acknowledged + after.acknowledged, timeout_s=20
    )
    print(
        f"\nscenario 6b: partitioned {healed_at - partitioned_at:.1f} s (node3 peers while "
        f"cut: {peers_while_cut}); others {during.rate_per_s():.0f} tx/s; node3 caught up "
        f"{catch_up_s:.1f} s after heal; heights 1..{top} identical"
    )
