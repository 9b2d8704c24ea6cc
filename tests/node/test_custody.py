"""Tx custody across leaders (node/custody.py) with a real Mempool and StandbyStore: a tx
in a block another validator proposed is never ordered again by us while that block may
still commit, even when the tx reaches us *after* the block, and comes back only once no
undecided block carries it.

The late arrival is the failure a Raft cluster test caught (a tx in block 10 of term 1 and
again in block 11 of term 2): the old leader's AppendEntries reached the new leader before
the gossip of one of its txs, which then sat pending in standby, was promoted on election
and proposed a second time."""

from __future__ import annotations

import asyncio

from node.carried import CarriedTxs
from node.custody import TxCustody
from node.mempool import Mempool
from node.standby import StandbyKeeper, StandbyStore
from protocol.block import Block, make_block
from protocol.crypto import SigningKey
from protocol.tx import Tx, sign_tx

CHAIN = "seoul-test"
KEY = SigningKey.from_secret(b"custody")


def tx(nonce: int) -> Tx:
    return sign_tx(
        KEY, chain_id=CHAIN, nonce=nonce, expiry_height=1_000, kind="notary.anchor", body=b"b"
    )


def block(height: int, txs: tuple[Tx, ...]) -> Block:
    return make_block(
        chain_id=CHAIN,
        height=height,
        prev_hash=b"\x00" * 32,
        time_ms=height,
        proposer=KEY.public_key,
        txs=txs,
        validators_hash=b"\x01" * 32,
        exec_height=0,
        exec_app_hash=b"\x00" * 32,
        exec_results_root=b"\x00" * 32,
    )


class Harness:
    """A node's custody, pool and standby at committed height `committed`."""

    def __init__(self) -> None:
        self.committed = 1
        self.carried = CarriedTxs(per_height_max=100)
        self.mempool = Mempool(chain_id=CHAIN, next_height=2, carried=self.carried)
        self.standby = StandbyStore(txs_max=100, bytes_max=1 << 20, carried=self.carried)
        self.keeper = StandbyKeeper(
            self.standby,
            mempool=self.mempool,
            forget=lambda _h: None,
            on_task_done=lambda _t: None,
            batch_txs=10,
            idle_admit_txs=10,
        )
        self.custody = TxCustody(
            mempool=self.mempool,
            standby=self.standby,
            standby_keeper=self.keeper,
            carried=self.carried,
            committed_height=lambda: self.committed,
        )

    def commit(self, height: int, txs: tuple[Tx, ...]) -> None:
        self.committed = height
        hashes = [t.hash() for t in txs]
        self.mempool.remove_committed(txs, committed_height=height)
        self.standby.remove(hashes)
        self.custody.release_abandoned_proposals(height, set(hashes))
        self.mempool.check_invariants()
        self.carried.check_invariants()

    def reap(self) -> list[Tx]:
        return self.mempool.reap(max_txs=100, max_bytes=1 << 20)


def test_a_tx_admitted_after_its_carrier_block_is_not_proposed_again() -> None:
    node = Harness()
    late = tx(1)
    node.custody.hold_carried_txs(block(2, (late,)))
    assert node.mempool.add(late.encode()).added
    assert node.reap() == [], "the carrier block may still commit: not ours to order"
    node.commit(2, (late,))
    assert late.hash() not in node.mempool
    assert late.hash() not in node.carried


def test_a_late_tx_comes_back_when_its_carrier_block_loses_the_height() -> None:
    node = Harness()
    late, winner = tx(1), tx(2)
    node.custody.hold_carried_txs(block(2, (late,)))
    node.mempool.add(late.encode())
    node.commit(2, (winner,))  # another block won height 2
    assert node.reap() == [late]


def test_a_tx_in_blocks_at_two_heights_waits_for_both() -> None:
    node = Harness()
    both = tx(1)
    node.mempool.add(both.encode())
    node.custody.hold_carried_txs(block(2, (both,)))
    node.custody.hold_carried_txs(block(3, (both,)))
    node.commit(2, (tx(2),))
    assert node.reap() == [], "height 3 still carries it"
    node.commit(3, (tx(3),))
    assert node.reap() == [both]


async def test_a_late_standby_tx_is_not_promoted_on_election_until_released() -> None:
    node = Harness()
    late = tx(1)
    node.custody.hold_carried_txs(block(2, (late,)))
    node.standby.add(late.hash(), late.encode())  # gossip after the AppendEntries
    node.keeper.track(leading=True, round_=2)  # elected: standby txs are promoted
    assert node.keeper.promotion is not None
    await asyncio.wait_for(node.keeper.promotion, 5)
    assert late.hash() not in node.mempool, "a held standby tx is not promoted"
    node.commit(2, (tx(2),))  # its carrier lost: released, promoted, proposable
    assert node.keeper.promotion is not None
    await asyncio.wait_for(node.keeper.promotion, 5)
    assert node.reap() == [late]
