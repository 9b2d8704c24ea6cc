"""Gossip receipt at a leader and at a backup, promotion on becoming leader, standby txs
held by a carried block, and the PBFT carried-block signature path. A real Node (validator 1
of a 4-validator PBFT genesis, real LevelDB store and services check_tx) that is not
started: gossip batches enter through TxGossip's receive path, and a stub stands in for
the p2p transport under gossip so that relayed batches can be counted (tests/node/gossip_rig.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consensus.pbft import messages as m
from node.network import NodeNetwork
from protocol.block import make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.tx import Tx
from tests.node.cluster_helpers import CHAIN
from tests.node.gossip_rig import OBSERVER, Rig, anchors, gossip_rig, settle


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with gossip_rig(tmp_path, consensus="pbft", validators=4) as made:
        yield made


async def test_backup_keeps_gossip_in_standby_verified_in_background_relays_nothing(
    rig: Rig,
) -> None:
    txs = anchors(rig.agency, 20)
    rig.receive(rig.keys[0].public_key, txs)
    await settle()
    assert len(rig.node.standby) == 20
    assert len(rig.node.mempool) == 0
    await rig.node.standby_verifier.idle()
    assert rig.node.mempool.counters.verifications == 20, "each checked once, in background"
    assert all(tx.hash() in rig.node.mempool.verified for tx in txs)
    assert len(rig.node.standby) == 20, "still standby: only the leader pools them"
    assert len(rig.node.mempool) == 0
    assert rig.relayed() == 0


async def test_leader_admits_gossip_in_full_and_relays_nothing(rig: Rig) -> None:
    rig.lead(True)
    txs = anchors(rig.agency, 20)
    rig.receive(rig.keys[2].public_key, txs)
    await settle()
    assert len(rig.node.mempool) == 20
    assert rig.node.mempool.counters.verifications == 20
    assert len(rig.node.standby) == 0
    assert rig.relayed() == 0, "the sender already sent it to every validator"


async def test_gossip_from_a_non_validator_is_admitted_and_relayed(rig: Rig) -> None:
    txs = anchors(rig.agency, 5)
    rig.receive(OBSERVER, txs)
    await settle()
    assert len(rig.node.mempool) == 5
    assert len(rig.node.standby) == 0
    assert rig.relayed() == 5 * 3, "flooded to the three validators, as a client tx"


async def test_becoming_leader_promotes_standby_through_full_admission(rig: Rig) -> None:
    await rig.node.standby_verifier.stop()  # admission alone must catch the forgery
    txs = anchors(rig.agency, 30)
    bad = dataclasses.replace(anchors(rig.agency, 1)[0], signature=bytes(64))
    rig.receive(rig.keys[0].public_key, [*txs, bad])
    await settle()
    assert len(rig.node.standby) == 31
    rig.lead(True)
    assert rig.node.standby_keeper.promotion is not None
    await rig.node.standby_keeper.promotion
    assert len(rig.node.standby) == 0
    assert {tx.hash() for tx in rig.node.mempool.pending_txs(100)} == {tx.hash() for tx in txs}
    assert rig.node.mempool.rejected_counts() == {"bad_signature": 1}
    assert rig.relayed() == 0
    more = anchors(rig.agency, 3)
    rig.receive(rig.keys[0].public_key, more)
    await settle()
    assert len(rig.node.standby) == 0, "nothing goes to standby while leading"
    assert len(rig.node.mempool) == 33


async def test_standby_txs_carried_by_a_block_are_not_promoted_until_it_loses(
    rig: Rig,
) -> None:
    txs = anchors(rig.agency, 6)
    rig.receive(rig.keys[0].public_key, txs)
    await settle()
    block = make_block(
        chain_id=CHAIN,
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=1,
        proposer=rig.keys[0].public_key,
        txs=tuple(txs[:4]),
        validators_hash=rig.node.chain_genesis.validator_set().hash(),
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )
    rig.node.custody.hold_carried_txs(block)
    rig.lead(True)
    assert rig.node.standby_keeper.promotion is not None
    await rig.node.standby_keeper.promotion
    assert {tx.hash() for tx in rig.node.mempool.pending_txs(10)} == {
        tx.hash() for tx in txs[4:]
    }, "txs in another validator's proposal are not ordered a second time"
    assert len(rig.node.standby) == 4
    # Height 1 committed another block without them: they come back and are promoted.
    rig.node.custody.release_abandoned_proposals(1, committed=set())
    assert rig.node.standby_keeper.promotion is not None
    await rig.node.standby_keeper.promotion
    assert len(rig.node.mempool) == 6
    assert len(rig.node.standby) == 0


async def test_a_backup_with_no_commit_admits_waiting_standby_txs_in_full(rig: Rig) -> None:
    await rig.node.standby_verifier.stop()  # admission alone must catch the forgery
    waited = anchors(rig.agency, 5)
    forged = dataclasses.replace(anchors(rig.agency, 1)[0], signature=bytes(64))
    rig.receive(rig.keys[0].public_key, [*waited, forged])
    await settle()
    mark = rig.node.standby.arrival_mark()
    fresh = anchors(rig.agency, 3)
    rig.receive(rig.keys[0].public_key, fresh)
    await settle()
    await rig.node.standby_keeper.admit_waiting(mark)
    pooled = {tx.hash() for tx in rig.node.mempool.pending_txs(100)}
    assert pooled == {tx.hash() for tx in waited}, "checked, so the forgery is not pending"
    assert rig.node.mempool.rejected_counts() == {"bad_signature": 1}
    assert len(rig.node.standby) == 3, "txs newer than the mark keep waiting"
    assert rig.relayed() == 0


def _pre_prepare(block_txs: list[Tx], key: SigningKey) -> m.PrePrepare:
    block = make_block(
        chain_id=CHAIN,
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=1,
        proposer=key.public_key,
        txs=tuple(block_txs),
        validators_hash=ZERO_HASH,
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )
    return m.PrePrepare(view=0, seq=1, block=block, replica=0, signature=bytes(64))


async def test_pbft_blocks_are_signature_checked_once_per_node(rig: Rig) -> None:
    txs = anchors(rig.agency, 40)
    pre_prepare = _pre_prepare(txs, rig.keys[0])
    assert rig.node.codec is not None
    blocks = rig.node.codec.carried_blocks(pre_prepare)
    assert blocks == (pre_prepare.block,), "PBFT PRE-PREPAREs carry their block's txs"
    mempool = rig.node.mempool
    for _ in range(2):  # the PRE-PREPARE, then the same block in a NEW-VIEW
        assert await mempool.ensure_verified_async(blocks[0].txs, blocks[0].tx_hashes()) is None
    assert mempool.counters.verifications == 40, "each tx verified exactly once"
    forged = dataclasses.replace(txs[0], signature=bytes(64))
    bad_block = _pre_prepare([forged], rig.keys[0]).block
    assert await mempool.ensure_verified_async(bad_block.txs, bad_block.tx_hashes()) == 0


async def test_standby_metrics_follow_the_store(rig: Rig) -> None:
    txs = anchors(rig.agency, 4)
    rig.receive(rig.keys[0].public_key, txs)
    await settle()
    rig.lead(True)
    assert rig.node.standby_keeper.promotion is not None
    await rig.node.standby_keeper.promotion
    rig.receive(rig.keys[0].public_key, anchors(rig.agency, 1))
    rig.lead(False)
    rig.receive(rig.keys[0].public_key, anchors(rig.agency, 2))
    await settle()
    store = rig.node.standby
    metrics = rig.node.metrics
    for _ in range(2):  # observing twice adds nothing twice
        metrics.observe_standby(
            txs=len(store),
            size_bytes=store.size_bytes(),
            evicted=store.counters.evicted,
            promoted=store.counters.promoted,
        )
    registry = metrics.registry
    assert registry.get_sample_value("seoulchain_mempool_standby_txs") == 2
    assert registry.get_sample_value("seoulchain_mempool_standby_bytes") == store.size_bytes()
    assert registry.get_sample_value("seoulchain_mempool_standby_promoted_total") == 4
    assert registry.get_sample_value("seoulchain_mempool_standby_evicted_total") == 0


async def test_an_evicted_standby_tx_gets_through_gossip_again(rig: Rig) -> None:
    rig.node.standby.txs_max = 2
    txs = anchors(rig.agency, 3)
    rig.receive(rig.keys[0].public_key, txs)
    await settle()
    assert txs[0].hash() not in rig.node.standby, "oldest evicted"
    assert rig.node.standby.counters.evicted == 1
    rig.receive(rig.keys[2].public_key, [txs[0], txs[2]])  # e.g. a re-offer
    await settle()
    assert txs[0].hash() in rig.node.standby, "gossip forgot the evicted tx"
    assert rig.node.network is not None
    assert rig.node.network.gossip.stats.txs_duplicate == 1, "the kept one is a duplicate"


async def test_a_pre_prepare_carrying_a_forged_tx_never_reaches_the_engine(rig: Rig) -> None:
    """Backups now first see most txs in a block, so the block path must check every
    signature (PbftCodec.carried_blocks names the blocks NodeNetwork checks)."""
    network = rig.node.network
    assert network is not None
    assert rig.node.codec is not None
    good = anchors(rig.agency, 3)
    forged = dataclasses.replace(anchors(rig.agency, 1)[0], signature=bytes(64))
    primary = rig.keys[0]

    def pre_prepare(txs: list[Tx], seq: int) -> bytes:
        block = _pre_prepare(txs, primary).block
        block = dataclasses.replace(block, header=dataclasses.replace(block.header, height=seq))
        message = m.make_pre_prepare(
            primary, chain_id=CHAIN, view=0, seq=seq, block=block, replica=0
        )
        assert rig.node.codec is not None
        return rig.node.codec.encode(message)

    network._on_consensus(primary.public_key, pre_prepare([*good, forged], 1))
    await settle_workers(network)
    assert network.rejected["bad_tx_signature"] == 1
    assert network.messages_in["PrePrepare"] == 1
    assert rig.node.mempool.counters.verifications == 4
    # The same txs in an honest block: no signature is checked a second time.
    network._on_consensus(primary.public_key, pre_prepare(good, 1))
    await settle_workers(network)
    assert network.rejected["bad_tx_signature"] == 1
    assert rig.node.mempool.counters.verifications == 4, "the good txs were verified once"


async def settle_workers(network: NodeNetwork) -> None:
    """Let the per-peer ingress worker drain its queue."""
    queues = network._ingress.values()
    for _ in range(100):
        if all(queue.empty() for queue in queues):
            await asyncio.sleep(0.01)
            return
        await asyncio.sleep(0.01)


async def test_promotion_and_the_block_path_reuse_the_background_verify(rig: Rig) -> None:
    """The point of the background verify: the PRE-PREPARE carrying gossiped txs, and the
    promotion on becoming leader, verify nothing again; a forgery is dropped from standby
    and counted, and its block is still refused."""
    network = rig.node.network
    assert network is not None
    assert rig.node.codec is not None
    txs = anchors(rig.agency, 40)
    forged = dataclasses.replace(anchors(rig.agency, 1)[0], signature=bytes(64))
    rig.receive(rig.keys[0].public_key, [*txs, forged])
    await settle()
    await rig.node.standby_verifier.idle()
    mempool = rig.node.mempool
    assert mempool.counters.verifications == 41
    assert forged.hash() not in rig.node.standby
    assert rig.node.standby.counters.forged == 1
    assert rig.node.standby_verifier.counters.forged == 1
    primary = rig.keys[0]
    block = _pre_prepare(txs[:30], primary).block
    message = m.make_pre_prepare(primary, chain_id=CHAIN, view=0, seq=1, block=block, replica=0)
    network._on_consensus(primary.public_key, rig.node.codec.encode(message))
    await settle_workers(network)
    assert network.messages_in["PrePrepare"] == 1
    assert network.rejected["bad_tx_signature"] == 0
    assert mempool.counters.verifications == 41, "the block path found all 30 verified"
    rig.receive(rig.keys[2].public_key, [forged])
    await settle()
    await rig.node.standby_verifier.idle()
    assert forged.hash() not in rig.node.standby, "a re-sent forgery is a gossip duplicate"
    assert mempool.counters.verifications == 41
    rig.lead(True)
    assert rig.node.standby_keeper.promotion is not None
    await rig.node.standby_keeper.promotion
    assert len(mempool) == 10, "the 10 not held by the PRE-PREPARE were promoted"
    assert mempool.counters.verifications == 41, "promotion hit the verified cache"
    metrics = rig.node.metrics
    verify = rig.node.standby_verifier.counters
    metrics.observe_standby_verify(forged=verify.forged, skipped=verify.skipped_full)
    sample = metrics.registry.get_sample_value
    assert sample("seoulchain_mempool_standby_bad_signature_total") == 1
    assert sample("seoulchain_mempool_standby_verify_skipped_total") == 0
