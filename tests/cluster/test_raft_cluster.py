"""Issue 5, process level: Raft clusters of real `seoulchain start` processes on 127.0.0.1.

1. 3 and 5 validators commit txs sent round-robin; every node holds the same chain, and
   every block carries a leader seal (kind 2) that verifies offline. Followers send txs
   to the leader only; only the leader floods.
2. kill -9 of the leader under load: a new leader in a higher term within about the
   election timeout, nothing acknowledged by broadcast_tx_commit is lost, and the old
   leader, restarted, rejoins as a follower with the same chain.
3. A node down while the leader compacts its log past the node's position catches up
   through InstallSnapshot + block sync and matches.
4. SIGTERM of the leader hands leadership over (TimeoutNow) faster than an election
   timeout, and commits continue.

The harness (tests/cluster/cluster_harness.py) is reused; only the testnet is built with
`consensus="raft"`. Times are measured and logged (pytest -s prints them), never asserted
tightly: the machine is shared. Each bound below is a generous ceiling, not a figure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.cluster import cluster_status, status_line
from node.config import Config
from protocol.crypto import sha256
from protocol.proof import ProofError, TxProof, verify_tx_proof
from protocol.proof_json import proof_from_json
from protocol.seal import SEAL_LEADER, decode_seal
from tests.cluster.cluster_harness import (
    RPC_ERRORS,
    LocalCluster,
    all_committed,
    assert_same_chain,
    assert_txs_found,
    commit_load,
    metric_value,
    running_cluster,
    send_round_robin,
    sync_load,
    wait_until,
)

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

POLL_S = 0.05  # status polling interval for the timing measurements
LOAD_BEFORE_CHANGE_S = 2.0  # steady load before the leader is killed or stopped
METRICS_SYNC_S = 1.5  # a node copies its p2p counters into its metrics every second


# --- cluster setup ------------------------------------------------------------------------


def raft_cluster(
    directory: Path,
    *,
    nodes: int,
    tune: Callable[[Config], None] | None = None,
) -> contextlib.AbstractAsyncContextManager[LocalCluster]:
    """A started, healthy Raft cluster whose processes are always stopped at the end."""
    return running_cluster(directory, nodes=nodes, consensus="raft", tune=tune)


def election_timeout_s(cluster: LocalCluster) -> float:
    """T in seconds: the engine draws each timeout from [T, 2T)."""
    consensus = cluster.nodes[0].config.consensus
    return consensus.election_timeout_ticks_min * consensus.tick_ms / 1000


# --- leader views -------------------------------------------------------------------------


@dataclass(frozen=True)
class Leader:
    index: int
    term: int


async def current_leader(cluster: LocalCluster, indices: Sequence[int]) -> Leader | None:
    """The node among `indices` that says role=leader in the highest term, if any."""
    best: Leader | None = None
    for index in indices:
        try:
            consensus = (await cluster.status(index))["consensus"]
        except RPC_ERRORS:
            continue
        if consensus["role"] == "leader" and (best is None or consensus["round"] > best.term):
            best = Leader(index, int(consensus["round"]))
    return best


async def wait_leader(
    cluster: LocalCluster, indices: Sequence[int], *, above_term: int = 0, timeout_s: float
) -> Leader:
    """Polls until one of `indices` leads in a term above `above_term`."""
    found: list[Leader] = []

    async def elected() -> bool:
        leader = await current_leader(cluster, indices)
        if leader is not None and leader.term > above_term:
            found.append(leader)
            return True
        return False

    await wait_until(elected, timeout_s=timeout_s, interval_s=POLL_S, what="a leader")
    return found[-1]


async def block_term(cluster: LocalCluster, index: int, height: int) -> int:
    """The term a committed block was sealed in (its leader seal's round)."""
    block = await cluster.client(index).block(height)
    return int(block["seal"]["round"])


async def wait_commit_in_term(
    cluster: LocalCluster, index: int, *, above_term: int, timeout_s: float
) -> int:
    """Polls node `index` until its latest block was sealed in a term above `above_term`;
    returns that height."""
    heights: list[int] = []

    async def committed() -> bool:
        height = await cluster.height(index)
        if height > 0 and await block_term(cluster, index, height) > above_term:
            heights.append(height)
            return True
        return False

    what = f"node{index} commits in a term above {above_term}"
    await wait_until(committed, timeout_s=timeout_s, interval_s=POLL_S, what=what)
    return heights[-1]


# --- seals --------------------------------------------------------------------------------


async def assert_leader_sealed(cluster: LocalCluster, index: int, upto: int) -> None:
    """Every block 1..upto on node `index` carries a kind-2 seal that verifies against the
    genesis validators, by the validator the block names as proposer."""
    validators = cluster.genesis.validator_set()
    chain_id = cluster.genesis.chain_id
    client = cluster.client(index)
    for height in range(1, upto + 1):
        block = await client.block(height)
        seal = decode_seal(bytes.fromhex(block["seal"]["hex"]))
        block_hash = bytes.fromhex(block["block_id"]["hash"])
        assert seal.kind == SEAL_LEADER, f"height {height}: seal kind {seal.kind}"
        assert len(seal.signatures) == 1, f"height {height}: {len(seal.signatures)} signers"
        reason = seal.invalid_for(
            validators, chain_id=chain_id, height=height, block_hash=block_hash
        )
        assert reason is None, f"height {height}: leader seal does not verify: {reason}"


async def assert_tx_proofs_verify(
    cluster: LocalCluster, index: int, tx_hashes: Sequence[str]
) -> None:
    """Offline proofs (protocol/proof.py) verify with accept_leader_seal=True, and are
    refused without it: a leader seal is one validator's word, not a quorum's."""
    validators = cluster.genesis.validator_set()
    chain_id = cluster.genesis.chain_id
    for tx_hash in tx_hashes:
        answer = await cluster.client(index).call("tx_proof", {"hash": tx_hash})
        proof = proof_from_json(answer)
        assert isinstance(proof, TxProof), type(proof)
        verified = verify_tx_proof(proof, validators, chain_id, accept_leader_seal=True)
        assert verified.tx_hash.hex() == tx_hash
        assert verified.seal_kind == SEAL_LEADER
        with pytest.raises(ProofError, match="leader seal"):
            verify_tx_proof(proof, validators, chain_id)


async def wait_all_committed(
    cluster: LocalCluster, indices: Sequence[int], tx_hashes: Sequence[str], *, timeout_s: float
) -> float:
    started = time.monotonic()
    for index in indices:

        async def done(index: int = index) -> bool:
            return await all_committed(cluster, index, tx_hashes)

        remaining = max(1.0, timeout_s - (time.monotonic() - started))
        await wait_until(done, timeout_s=remaining, interval_s=0.2, what=f"node{index} commits all")
    return time.monotonic() - started


async def tx_heights(cluster: LocalCluster, index: int, upto: int) -> dict[str, list[int]]:
    """Every tx hash in blocks 1..upto of node `index`, with the heights that carry it:
    read from the blocks themselves, not from the tx index."""
    heights: dict[str, list[int]] = {}
    client = cluster.client(index)
    for height in range(1, upto + 1):
        block = await client.block(height)
        for raw in block["block"]["data"]["txs"]:
            heights.setdefault(sha256(base64.b64decode(raw)).hex(), []).append(height)
    return heights


async def assert_in_blocks(
    cluster: LocalCluster, index: int, upto: int, tx_hashes: Sequence[str]
) -> dict[str, list[int]]:
    """Every tx is in some block 1..upto of node `index` (nothing acknowledged is lost);
    returns the txs included more than once, with their heights."""
    heights = await tx_heights(cluster, index, upto)
    missing = [tx_hash for tx_hash in tx_hashes if tx_hash not in heights]
    assert not missing, f"node{index} lost {len(missing)} acknowledged txs: {missing[:3]}"
    return {tx_hash: found for tx_hash, found in heights.items() if len(found) > 1}


async def settled_top(cluster: LocalCluster, indices: Sequence[int]) -> int:
    """The highest height any of `indices` has executed, once all of them have reached it.
    A tx acknowledged by one node sits at a height the others may not have executed yet
    when the load stops; comparing chains only up to the lowest node's height would miss
    it (a false "lost" on a slow node), so wait for the laggards instead."""
    top = max(await cluster.heights(indices))
    await cluster.wait_height(indices, top, timeout_s=15)
    return top


# --- scenario 1 ---------------------------------------------------------------------------


@pytest.mark.parametrize(("nodes", "txs"), [(3, 600), (5, 400)])
async def test_round_robin_txs_commit_identically_under_leader_seals(
    tmp_path: Path, nodes: int, txs: int
) -> None:
    async with raft_cluster(tmp_path / "net", nodes=nodes) as cluster:
        indices = list(range(nodes))
        leader = await wait_leader(cluster, indices, timeout_s=15)

        async def all_see_the_leader() -> bool:
            return all([await cluster.leader_seen_by(i) == leader.index for i in indices])

        await wait_until(all_see_the_leader, timeout_s=15, interval_s=POLL_S, what="followers")
        factories = [cluster.tx_factory("raft-rr-a", 0), cluster.tx_factory("raft-rr-b", 1)]
        batch = [factories[i % 2].make() for i in range(txs)]
        started = time.monotonic()
        hashes = await send_round_robin(cluster, indices, batch, batch_txs=25)
        assert len(set(hashes)) == txs
        await wait_all_committed(cluster, indices, hashes, timeout_s=40)
        elapsed = time.monotonic() - started

        top = min(await cluster.heights(indices))
        await assert_txs_found(cluster, indices, hashes)
        await assert_same_chain(cluster, indices, top)
        statuses = [await cluster.status(index) for index in indices]
        assert all(s["consensus"]["fault_model"] == "crash" for s in statuses)
        assert sum(s["consensus"]["role"] == "leader" for s in statuses) == 1
        in_blocks = 0
        for height in range(1, top + 1):
            block = await cluster.client(leader.index).block(height)
            in_blocks += len(block["block"]["data"]["txs"])
        assert in_blocks == txs, f"{in_blocks} txs in blocks 1..{top}, sent {txs}"
        # `seoulchain cluster status` sees the harness's processes and the Raft roles.
        lines = [
            status_line(state)
            for state in await asyncio.to_thread(cluster_status, cluster.directory)
        ]
        assert sum("role=leader" in line for line in lines) == 1, lines
        assert sum("role=follower" in line for line in lines) == nodes - 1, lines
        await assert_leader_sealed(cluster, (leader.index + 1) % nodes, top)
        await assert_tx_proofs_verify(cluster, (leader.index + 2) % nodes, hashes[::97])
        await assert_followers_send_txs_to_the_leader_only(cluster, indices, leader.index)
        log.info(
            "raft scenario 1 (n=%d): %d txs, %d blocks, %.2f s, %.0f tx/s",
            nodes,
            txs,
            top,
            elapsed,
            txs / elapsed,
        )
        print(
            f"\nraft n={nodes}: {txs} txs in {top} blocks, {elapsed:.2f} s, "
            f"{txs / elapsed:.0f} tx/s"
        )


async def assert_followers_send_txs_to_the_leader_only(
    cluster: LocalCluster, indices: Sequence[int], leader: int
) -> None:
    """Followers forward their clients' txs to the leader and to no one else; only the
    leader floods (its own clients' txs). Counted by each node's p2p metrics on the tx
    channel, once they have synced (every second): what the leader received is what the
    followers sent, and what the followers received is what the leader sent."""
    await asyncio.sleep(METRICS_SYNC_S)
    texts = {index: await cluster.metrics_text(index) for index in indices}

    def txs_frames(index: int, direction: str) -> float:
        labels = f'channel="txs",direction="{direction}"'
        return metric_value(texts[index], "seoulchain_p2p_messages_total", labels)

    followers = [index for index in indices if index != leader]
    assert all(txs_frames(index, "out") > 0 for index in [leader, *followers])
    sent_by_followers = sum(txs_frames(index, "out") for index in followers)
    assert txs_frames(leader, "in") == sent_by_followers, "followers send to the leader only"
    received_by_followers = sum(txs_frames(index, "in") for index in followers)
    assert received_by_followers == txs_frames(leader, "out"), "a follower sent to a follower"


# --- scenario 2 ---------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [3, 5])
async def test_kill_9_of_the_leader_under_load_elects_a_new_one_and_loses_nothing(
    tmp_path: Path, nodes: int
) -> None:
    async with raft_cluster(tmp_path / "net", nodes=nodes) as cluster:
        indices = list(range(nodes))
        old = await wait_leader(cluster, indices, timeout_s=15)
        survivors = [index for index in indices if index != old.index]
        down: set[int] = set()
        stop = asyncio.Event()
        load = asyncio.create_task(
            commit_load(
                cluster,
                cluster.tx_factory("raft-kill"),
                lambda: [index for index in indices if index not in down],
                stop=stop,
                txs_max=5_000,
                duration_s_max=35,
            )
        )
        try:
            await cluster.wait_height(indices, 3, timeout_s=15)
            await asyncio.sleep(LOAD_BEFORE_CHANGE_S)  # a steady stream in flight
            down.add(old.index)
            cluster.kill(old.index)
            killed_at = time.monotonic()
            new = await wait_leader(cluster, survivors, above_term=old.term, timeout_s=15)
            elected_s = time.monotonic() - killed_at
            first = await wait_commit_in_term(cluster, new.index, above_term=old.term, timeout_s=15)
            first_commit_s = time.monotonic() - killed_at
            await cluster.wait_height(survivors, first + 3, timeout_s=15)  # commits go on
        finally:
            stop.set()
            report = await load
        assert report.acknowledged, report.errors[:5]

        cluster.start(old.index)
        await cluster.wait_healthy([old.index])
        caught_up_s = await wait_all_committed(
            cluster, [old.index], report.acknowledged, timeout_s=30
        )
        rejoined = (await cluster.status(old.index))["consensus"]
        assert rejoined["role"] == "follower", rejoined
        assert rejoined["round"] >= new.term
        leader_now = await current_leader(cluster, indices)
        assert leader_now == new, f"the rejoining node disrupted the leader: {leader_now}"
        await cluster.wait_height(indices, first + 3, timeout_s=15)
        top = await settled_top(cluster, indices)
        await assert_same_chain(cluster, indices, top)
        twice = await assert_in_blocks(cluster, old.index, top, report.acknowledged)
        timeout = election_timeout_s(cluster)
        log.info(
            "raft scenario 2 (n=%d): T=%.2f s; leader after %.2f s, first commit after %.2f s; "
            "%d acknowledged (%.0f tx/s), %d errors; restarted node caught up in %.2f s; "
            "%d txs in two blocks",
            nodes,
            timeout,
            elected_s,
            first_commit_s,
            len(report.acknowledged),
            report.rate_per_s(),
            len(report.errors),
            caught_up_s,
            len(twice),
        )
        print(
            f"\nraft n={nodes} kill -9: T={timeout:.2f}s elected {elected_s:.2f}s, "
            f"first commit {first_commit_s:.2f}s, {len(report.acknowledged)} acked "
            f"({report.rate_per_s():.0f} tx/s), {len(report.errors)} errors, "
            f"rejoin {caught_up_s:.2f}s, {len(twice)} txs in two blocks"
        )


# --- scenario 3 ---------------------------------------------------------------------------

# RaftConfig.log_retention_heights / compaction_step_heights (256 / 64) are not reachable
# from config.toml or genesis (node/engines.py does not pass them), so the test commits
# enough one-tx blocks to pass the default: the first compaction happens at executed
# height 256 + 64 = 320 and moves the base to height 64.
RETENTION_HEIGHTS = 256
COMPACTION_STEP_HEIGHTS = 64
SNAPSHOT_TXS = RETENTION_HEIGHTS + COMPACTION_STEP_HEIGHTS + 40


def one_tx_blocks(config: Config) -> None:
    config.consensus.block_max_txs = 1
    config.consensus.block_interval_ms = 1


async def test_node_behind_the_compacted_log_catches_up_through_snapshot(
    tmp_path: Path,
) -> None:
    async with raft_cluster(tmp_path / "net", nodes=3, tune=one_tx_blocks) as cluster:
        indices = [0, 1, 2]
        leader = await wait_leader(cluster, indices, timeout_s=15)
        lagger = (leader.index + 1) % 3
        cluster.kill(lagger)
        lagger_height = 0  # killed before any block committed: `top` starts at 0
        live = [index for index in indices if index != lagger]
        factories = [cluster.tx_factory("raft-snap-a", 0), cluster.tx_factory("raft-snap-b", 1)]
        txs = [factories[i % 2].make() for i in range(SNAPSHOT_TXS)]
        started = time.monotonic()
        hashes = await send_round_robin(cluster, live, txs, batch_txs=40)
        await wait_all_committed(cluster, live, hashes, timeout_s=60)
        filled_s = time.monotonic() - started
        top = min(await cluster.heights(live))

        extra = (await cluster.status(leader.index))["consensus"]["extra"]
        assert extra["compactions"] >= 1, extra
        assert extra["log_base_height"] > lagger_height, extra

        cluster.start(lagger)
        restarted_at = time.monotonic()
        await cluster.wait_healthy([lagger])
        await cluster.wait_height([lagger], top, timeout_s=40)
        catch_up_s = time.monotonic() - restarted_at
        await assert_txs_found(cluster, [lagger], hashes)
        lagger_extra = (await cluster.status(lagger))["consensus"]["extra"]
        assert lagger_extra["snapshots_installed"] >= 1, lagger_extra
        assert lagger_extra["snapshot_pending"] == 0, lagger_extra
        leader_extra = (await cluster.status(leader.index))["consensus"]["extra"]
        assert leader_extra["snapshots_sent"] >= 1, leader_extra
        await assert_same_chain(cluster, indices, top)
        log.info(
            "raft scenario 3: %d one-tx blocks in %.2f s (%.0f blocks/s); leader base height "
            "%d; restarted node caught up %d blocks through a snapshot in %.2f s",
            top,
            filled_s,
            top / filled_s,
            extra["log_base_height"],
            top,
            catch_up_s,
        )
        print(
            f"\nraft snapshot: {top} blocks in {filled_s:.2f}s ({top / filled_s:.0f}/s), "
            f"base {extra['log_base_height']}, catch-up {catch_up_s:.2f}s"
        )


# --- scenario 4 ---------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [3])
async def test_sigterm_of_the_leader_hands_over_faster_than_an_election(
    tmp_path: Path, nodes: int
) -> None:
    async with raft_cluster(tmp_path / "net", nodes=nodes) as cluster:
        indices = list(range(nodes))
        old = await wait_leader(cluster, indices, timeout_s=15)
        others = [index for index in indices if index != old.index]
        down: set[int] = set()
        stop = asyncio.Event()
        load = asyncio.create_task(
            commit_load(
                cluster,
                cluster.tx_factory("raft-term"),
                lambda: [index for index in indices if index not in down],
                stop=stop,
                txs_max=5_000,
                duration_s_max=30,
            )
        )
        try:
            await cluster.wait_height(indices, 3, timeout_s=15)
            await asyncio.sleep(LOAD_BEFORE_CHANGE_S)  # a steady stream in flight
            down.add(old.index)
            stopped_at = time.monotonic()
            stopping = asyncio.create_task(asyncio.to_thread(cluster.terminate, old.index))
            new = await wait_leader(cluster, others, above_term=old.term, timeout_s=15)
            moved_s = time.monotonic() - stopped_at
            first = await wait_commit_in_term(cluster, new.index, above_term=old.term, timeout_s=15)
            first_commit_s = time.monotonic() - stopped_at
            await cluster.wait_height(others, first + 3, timeout_s=15)
            await stopping
        finally:
            stop.set()
            report = await load
        assert report.acknowledged, report.errors[:5]
        top = await settled_top(cluster, others)
        await assert_same_chain(cluster, others, top)
        twice = await assert_in_blocks(cluster, new.index, top, report.acknowledged)
        extra = (await cluster.status(new.index))["consensus"]["extra"]
        timeout = election_timeout_s(cluster)
        log.info(
            "raft scenario 4: T=%.2f s; leadership moved %.2f s after SIGTERM, first commit "
            "after %.2f s; timeout_now_received=%s; %d txs in two blocks",
            timeout,
            moved_s,
            first_commit_s,
            extra.get("timeout_now_received"),
            len(twice),
        )
        print(
            f"\nraft SIGTERM: T={timeout:.2f}s moved {moved_s:.2f}s first commit "
            f"{first_commit_s:.2f}s, {len(twice)} txs in two blocks, extra={extra}"
        )
        assert extra.get("timeout_now_received", 0) >= 1, f"no TimeoutNow handover: {extra}"
        assert new.term == old.term + 1, "a handover is one election, no pre-vote rounds"
        # The one timing assertion, because it is the scenario's claim: without a handover
        # no follower even starts a pre-vote before T. Measured 0.06-0.09 s; T = 1 s.
        assert moved_s < timeout, f"handover took {moved_s:.2f} s, T is {timeout:.2f} s"


# --- regression: a leader change must not include in-flight txs twice ------------------
# Fixed by the mempool holding txs of blocks other validators proposed (node/custody.py
# TxCustody.hold_carried_txs) and by the tx index keeping the executed copy (node/executor.py).

LEADER_CHANGES = 3


async def test_a_leader_change_keeps_every_acknowledged_tx_once_with_its_result(
    tmp_path: Path,
) -> None:
    """Up to LEADER_CHANGES kill -9s of the leader under steady load (one alone shows the
    bug about two runs in three); every acknowledged tx must stay in exactly one block."""
    async with raft_cluster(tmp_path / "net", nodes=3) as cluster:
        indices = [0, 1, 2]
        down: set[int] = set()
        stop = asyncio.Event()

        def live() -> list[int]:
            return [index for index in indices if index not in down]

        loads = asyncio.gather(
            commit_load(
                cluster,
                cluster.tx_factory("raft-once"),
                live,
                stop=stop,
                txs_max=5_000,
                duration_s_max=40,
                concurrency=8,
            ),
            sync_load(
                cluster,
                cluster.tx_factory("raft-once-sync", 1),
                live,
                stop=stop,
                batch_txs=20,
                interval_s=0.05,
                txs_max=20_000,
                duration_s_max=40,
            ),
        )
        try:
            for _ in range(LEADER_CHANGES):
                old = await wait_leader(cluster, indices, timeout_s=15)
                await cluster.wait_height(
                    indices, await cluster.height(old.index) + 2, timeout_s=15
                )
                down.add(old.index)
                cluster.kill(
                    old.index
                )  # an election: the old leader's last entries are uncommitted
                new = await wait_leader(cluster, live(), above_term=old.term, timeout_s=15)
                first = await wait_commit_in_term(
                    cluster, new.index, above_term=old.term, timeout_s=15
                )
                await cluster.wait_height(live(), first + 2, timeout_s=15)
                cluster.start(old.index)
                await cluster.wait_healthy([old.index])
                down.discard(old.index)
        finally:
            stop.set()
            report, _admitted_only = await loads  # admitted to a killed node may be lost
        await wait_all_committed(cluster, indices, report.acknowledged, timeout_s=30)
        top = min(await cluster.heights(indices))
        twice = await assert_in_blocks(cluster, 0, top, report.acknowledged)
        terms = {
            tx_hash: [await block_term(cluster, 0, h) for h in heights]
            for tx_hash, heights in list(twice.items())[:3]
        }
        assert not twice, f"{len(twice)} txs in two blocks (heights {twice}; terms {terms})"
        await assert_txs_found(cluster, indices, report.acknowledged)
