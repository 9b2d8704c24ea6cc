"""Overload must not cost the primary its view: txs the primary refused while its pool was
full, and which wait at the backups, reach it again and commit (NodeNetwork.reoffer_to_leader).
Four PBFT validators in one process over real encrypted TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol.tx import sign_tx
from services.notary import encode_anchor
from tests.node.cluster_helpers import CHAIN, local_net

pytestmark = pytest.mark.slow

PRIMARY_QUOTA = 5  # the primary holds at most this many txs of one signer
TXS = 30


async def test_txs_refused_by_a_full_primary_still_commit_without_a_view_change(
    tmp_path: Path,
) -> None:
    net = local_net(tmp_path, validators=4)
    for config in net.configs:
        config.consensus.view_change_timeout_ticks = 400  # 4 s: well above the re-offer
    net.configs[0].mempool.max_txs_per_signer = PRIMARY_QUOTA
    nodes = [await net.start_node(i) for i in range(4)]
    try:
        assert nodes[0].driver.status().leader == 0, "node0 is the primary of view 0"
        txs = [
            sign_tx(
                net.agency,
                chain_id=CHAIN,
                nonce=n,
                expiry_height=10_000,
                kind="notary.anchor",
                body=encode_anchor(n.to_bytes(32, "big"), "certificate"),
            )
            for n in range(TXS)
        ]
        results = await nodes[1].submit_txs([tx.encode() for tx in txs])
        assert all(result.code == 0 for result in results)
        committed = await asyncio.gather(
            *(nodes[1].wait_for_commit(tx.hash(), timeout_s=30) for tx in txs)
        )
        assert all(c is not None and c.result.code == 0 for c in committed)
        assert nodes[0].mempool.rejected_counts().get("signer_quota", 0) > 0, (
            "the primary must have refused some txs for the test to mean anything"
        )
        assert all(node.driver.status().round == 0 for node in nodes), "a view change ran"
    finally:
        for node in nodes:
            await node.stop()
