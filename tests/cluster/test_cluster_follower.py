"""A follower (non-validator read replica) next to a real 4-validator cluster: a fifth home,
built by hand (there is no CLI command for it yet), with its own key listed in the
validators' p2p.allowed_peer_keys, one persistent peer (node0) and the same genesis. It
follows the chain by checking seals (consensus/follower.py) and serves reads. It is started
only after the validators have committed, so it must sync every block from genesis."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.config import GENESIS_FILE, NODE_KEY_FILE, Config, write_config
from node.keys import new_key_file
from tests.cluster.cluster_harness import (
    LocalCluster,
    all_committed,
    assert_same_chain,
    assert_txs_found,
    fast_test_config,
    free_port,
    send_round_robin,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

VALIDATORS = list(range(4))


def build_follower_home(cluster: LocalCluster, home: Path) -> None:
    """Config for a follower whose key already sits in home/node_key.json."""
    validator = cluster.genesis.validators[0]
    config = Config(home=home)
    fast_test_config(config)
    config.node.moniker = "follower"
    config.p2p.listen_address = f"127.0.0.1:{free_port()}"
    config.p2p.persistent_peers = [f"{validator.public_key.hex()}@{validator.p2p_address}"]
    config.rpc.listen_address = f"127.0.0.1:{free_port()}"
    config.metrics.listen_address = f"127.0.0.1:{free_port()}"
    write_config(home, config)
    shutil.copyfile(cluster.directory / GENESIS_FILE, home / GENESIS_FILE)


@pytest.fixture
async def with_follower(tmp_path: Path) -> AsyncIterator[tuple[LocalCluster, int]]:
    home = tmp_path / "follower"
    home.mkdir()
    follower_key = new_key_file(home / NODE_KEY_FILE)

    def allow_follower(config: Config) -> None:
        config.p2p.allowed_peer_keys = [follower_key.public_key.hex()]

    cluster = LocalCluster.create(tmp_path / "net", nodes=4, tune=allow_follower)
    try:
        build_follower_home(cluster, home)
        follower = cluster.add_home(home)
        for index in VALIDATORS:
            cluster.start(index)
        await cluster.wait_healthy(VALIDATORS)
        yield cluster, follower  # the test starts the follower when it wants it
    finally:
        cluster.shutdown()
        await cluster.close_clients()


async def test_follower_tracks_the_chain_and_serves_reads(
    with_follower: tuple[LocalCluster, int],
) -> None:
    cluster, follower = with_follower
    factory = cluster.tx_factory("follower")
    txs = factory.batch(200)
    hashes = await send_round_robin(cluster, VALIDATORS, txs, batch_txs=50)

    async def committed() -> bool:
        return await all_committed(cluster, 0, hashes)

    await wait_until(committed, timeout_s=30, interval_s=0.3, what="200 txs committed")
    top = max(await cluster.heights(VALIDATORS))
    cluster.start(follower)  # late: it must fetch and check every sealed block from genesis
    started = time.monotonic()
    await cluster.wait_healthy([follower])
    await cluster.wait_height([follower], top, timeout_s=30)
    catch_up_s = time.monotonic() - started
    live = await cluster.client(0).broadcast_tx_commit(factory.make())
    assert live["tx_result"]["code"] == 0
    await cluster.wait_height([follower], int(live["height"]), timeout_s=20)
    top = max(await cluster.heights(VALIDATORS))
    await cluster.wait_height([*VALIDATORS, follower], top, timeout_s=20)
    await assert_same_chain(cluster, [*VALIDATORS, follower], top)
    await assert_txs_found(cluster, [follower], hashes)

    status = await cluster.status(follower)
    assert status["validator_info"]["index"] is None
    assert status["validator_info"]["voting_power"] == 0
    reader = cluster.client(follower)
    block = await reader.block(top)
    assert block["block_id"]["hash"] == (await cluster.client(0).block(top))["block_id"]["hash"]
    found = await reader.tx(hashes[7], prove=True)
    assert found["tx_result"]["code"] == 0
    assert "proof" in found
    document = hashlib.sha256(b"follower/8").hexdigest()  # TxFactory: tag/nonce
    answer = await reader.query("notary/document", {"hash": document})
    assert answer["found"] is True
    assert answer["value"]["issuer"] == factory.key.public_key.hex()
    print(
        f"\nfollower: started late, reached height {top} {catch_up_s:.1f} s after process "
        f"start; then followed a new commit; heights 1..{top} identical"
    )
