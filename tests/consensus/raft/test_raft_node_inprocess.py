"""Raft validators in one process over real encrypted TCP on 127.0.0.1: the real node
(driver, p2p, gossip, block sync, execution, LevelDB) with the real Raft engine, built by
node/engines.py from a raft genesis.

Pins: clusters of 3 and 5 commit the same chain with leader seals; stopping the leader
(which hands over leadership first) gives a new leader and loses nothing committed; a
restarted node catches up, from the log or from a snapshot through block sync. Times are
logged, never asserted."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consensus.raft.config import RaftConfig
from node import engines
from node.node import Node
from protocol.seal import SEAL_LEADER
from protocol.tx import Tx, sign_tx
from services.notary import encode_anchor
from tests.node.cluster_helpers import CHAIN, LocalNet, local_net

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

ELECTION_TIMEOUT_TICKS = 30  # x 10 ms ticks


async def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


def _net(tmp_path: Path, count: int) -> LocalNet:
    net = local_net(tmp_path, validators=count, consensus="raft")
    for config in net.configs:
        config.consensus.election_timeout_ticks_min = ELECTION_TIMEOUT_TICKS
        config.consensus.election_timeout_ticks_max = 2 * ELECTION_TIMEOUT_TICKS
        config.consensus.heartbeat_ticks = ELECTION_TIMEOUT_TICKS // 5
    return net


def _txs(net: LocalNet, first: int, count: int) -> list[Tx]:
    return [
        sign_tx(
            net.agency,
            chain_id=CHAIN,
            nonce=n,
            expiry_height=100_000,
            kind="notary.anchor",
            body=encode_anchor(n.to_bytes(32, "big"), "certificate"),
        )
        for n in range(first, first + count)
    ]


async def _commit_all(nodes: list[Node], txs: list[Tx]) -> int:
    for n, tx in enumerate(txs):
        result = await nodes[n % len(nodes)].submit_tx(tx.encode())
        assert result.code == 0, result
    committed = await asyncio.gather(
        *(nodes[0].wait_for_commit(tx.hash(), timeout_s=30) for tx in txs)
    )
    assert all(c is not None and c.result.code == 0 for c in committed)
    return max(c.height for c in committed if c is not None)


def _leaders(nodes: dict[int, Node]) -> list[int]:
    return [i for i, n in sorted(nodes.items()) if n.driver.status().role == "leader"]


def _assert_same_chain(nodes: list[Node], top: int) -> None:
    for height in range(1, top + 1):
        assert len({n.store.block_hash(height) for n in nodes}) == 1, f"fork at {height}"
        assert len({n.store.app_hash(height) for n in nodes}) == 1, f"app hash at {height}"
    validators = nodes[0].chain_genesis.validator_set()
    for height in range(1, top + 1):
        sealed = nodes[0].sealed_block(height)
        assert sealed is not None
        assert sealed.seal.kind == SEAL_LEADER
        assert sealed.invalid_for(validators) is None


@pytest.mark.parametrize("count", [3, 5])
async def test_raft_cluster_commits_the_same_chain(tmp_path: Path, count: int) -> None:
    net = _net(tmp_path, count)
    nodes = [await net.start_node(i) for i in range(count)]
    try:
        top = await _commit_all(nodes, _txs(net, 0, 30))
        assert await _wait(lambda: all(n.latest_height() >= top for n in nodes), 20)
        _assert_same_chain(nodes, top)
        status = nodes[0].status()["consensus"]
        assert status["kind"] == "raft"
        assert status["fault_model"] == "crash"
    finally:
        for node in nodes:
            await node.stop()


async def test_stopping_the_leader_hands_over_and_loses_nothing(tmp_path: Path) -> None:
    net = _net(tmp_path, 3)
    nodes = {i: await net.start_node(i) for i in range(3)}
    try:
        top = await _commit_all(list(nodes.values()), _txs(net, 0, 10))
        assert await _wait(lambda: len(_leaders(nodes)) == 1, 10)
        (leader,) = _leaders(nodes)
        before = {h: nodes[leader].store.block_hash(h) for h in range(1, top + 1)}
        await nodes.pop(leader).stop()  # graceful: it hands over first (kill -9: processes test)
        stopped = time.monotonic()
        assert await _wait(lambda: len(_leaders(nodes)) == 1, 15), "no new leader"
        log.info("new Raft leader %.3f s after the old one stopped", time.monotonic() - stopped)
        top = await _commit_all(list(nodes.values()), _txs(net, 10, 10))
        nodes[leader] = await net.start_node(leader)
        assert await _wait(lambda: nodes[leader].latest_height() >= top, 20), "no catch-up"
        for height, block_hash in before.items():
            assert nodes[leader].store.block_hash(height) == block_hash
        _assert_same_chain(list(nodes.values()), top)
    finally:
        for node in nodes.values():
            await node.stop()


async def test_restarted_node_catches_up_from_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short log retention, so that a few blocks put the stopped node behind the base.
    small = functools.partial(RaftConfig, log_retention_heights=4, compaction_step_heights=2)
    monkeypatch.setattr(engines, "RaftConfig", small)
    net = _net(tmp_path, 3)
    nodes = {i: await net.start_node(i) for i in range(3)}
    try:
        await _commit_all(list(nodes.values()), _txs(net, 0, 3))
        assert await _wait(lambda: len(_leaders(nodes)) == 1, 10)
        (leader,) = _leaders(nodes)
        behind = (leader + 1) % 3
        await nodes.pop(behind).stop()
        top = 0
        for batch in range(6):
            top = await _commit_all(list(nodes.values()), _txs(net, 10 + batch * 3, 3))
        base = nodes[leader].driver.status().extra["log_base_height"]
        assert isinstance(base, int)
        assert base > 0, "the leader compacted its log"
        nodes[behind] = await net.start_node(behind)
        assert await _wait(lambda: nodes[behind].latest_height() >= top, 30), "no catch-up"
        extra = nodes[behind].driver.status().extra
        # At least one install. A second one is legitimate: while the first snapshot's
        # blocks arrive by block sync, the leader may cut proof blocks and compact past
        # that base, and then sends the newer one (the same snapshot again is only
        # acknowledged, not installed twice: consensus/raft/snapshot.py).
        installed = extra["snapshots_installed"]
        assert isinstance(installed, int)
        assert installed >= 1
        assert extra.get("snapshots_refused", 0) == 0
        _assert_same_chain(list(nodes.values()), top)
    finally:
        for node in nodes.values():
            await node.stop()
