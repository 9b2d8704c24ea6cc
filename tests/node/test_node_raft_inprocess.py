"""Three Raft validators in one process over real encrypted TCP on 127.0.0.1: txs submitted
to any node commit under leader seals, every node holds the same chain, and a leader that
stops gracefully hands leadership over before it goes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol.proof import make_tx_proof, verify_tx_proof
from protocol.seal import SEAL_LEADER
from protocol.tx import sign_tx
from services.notary import encode_anchor
from tests.node.cluster_helpers import CHAIN, local_net

pytestmark = pytest.mark.slow


async def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_three_raft_validators_commit_and_hand_over(tmp_path: Path) -> None:
    net = local_net(tmp_path, validators=3, consensus="raft")
    nodes = [await net.start_node(i) for i in range(3)]
    try:
        assert await _wait(lambda: any(n.driver.status().role == "leader" for n in nodes), 15)
        txs = [
            sign_tx(
                net.agency,
                chain_id=CHAIN,
                nonce=n,
                expiry_height=10_000,
                kind="notary.anchor",
                body=encode_anchor(n.to_bytes(32, "big"), "permit"),
            )
            for n in range(30)
        ]
        for n, tx in enumerate(txs):
            assert (await nodes[n % 3].submit_tx(tx.encode())).code == 0
        committed = await asyncio.gather(
            *(nodes[1].wait_for_commit(tx.hash(), timeout_s=30) for tx in txs)
        )
        assert all(c is not None and c.result.code == 0 for c in committed)
        top = max(c.height for c in committed if c is not None)
        assert await _wait(lambda: all(n.latest_height() >= top for n in nodes), 15)
        for height in range(1, top + 1):
            assert len({n.store.block_hash(height) for n in nodes}) == 1, f"fork at {height}"
        sealed = nodes[2].sealed_block(top)
        assert sealed is not None
        assert sealed.seal.kind == SEAL_LEADER
        proof = nodes[0].tx_proof(txs[0].hash())
        assert proof is not None
        sealed_first = nodes[0].sealed_block(proof.height)
        assert sealed_first is not None
        verified = verify_tx_proof(
            make_tx_proof(sealed_first, proof.index),
            net.genesis.validator_set(),
            CHAIN,
            accept_leader_seal=True,
        )
        assert verified.tx.hash() == txs[0].hash()

        leader = next(i for i, n in enumerate(nodes) if n.driver.status().role == "leader")
        old_term = nodes[leader].driver.status().round
        await nodes[leader].stop()
        others = [n for i, n in enumerate(nodes) if i != leader]
        assert await _wait(lambda: any(n.driver.status().role == "leader" for n in others), 5), (
            "no new leader after a graceful hand-over"
        )
        assert max(n.driver.status().round for n in others) > old_term
        nodes = others
    finally:
        for node in nodes:
            await node.stop()
