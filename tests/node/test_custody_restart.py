"""A restarted validator holds the txs of the blocks its engine restored.

The pool does not survive a restart; the consensus log does. A Raft follower that stored
the old leader's entry for block 1 and restarts may win the next election and commit that
entry (a leader commits earlier terms' entries with its own). If a tx of that block is
re-offered to it meanwhile (its client resubmits, a peer re-offers) and the node took it as
pending, it would order the tx a second time in a block of its own. So the node holds the
restored blocks' txs at start, as it holds the txs of a block another validator proposed.
"""

from __future__ import annotations

from pathlib import Path

from consensus.raft import durable
from consensus.raft.messages import Entry
from consensus.raft.replication import sign_seal
from protocol.block import make_block
from protocol.crypto import ZERO_HASH
from protocol.tx import Tx, sign_tx
from services.notary import encode_anchor
from storage.leveldb import LevelDbChainStore
from tests.node.cluster_helpers import CHAIN, LocalNet, local_net


def _anchor(net: LocalNet, nonce: int) -> Tx:
    return sign_tx(
        net.agency,
        chain_id=CHAIN,
        nonce=nonce,
        expiry_height=10_000,
        kind="notary.anchor",
        body=encode_anchor(nonce.to_bytes(32, "big"), "permit"),
    )


def _store_uncommitted_entry(net: LocalNet, node: int, txs: tuple[Tx, ...]) -> None:
    """Node `node`'s Raft records as a follower of node 1 in term 1 that stored the
    leader's no-op and its block at height 1, whose commit it never learnt."""
    leader = 1
    block = make_block(
        chain_id=CHAIN,
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=net.genesis.genesis_time_ms + 1,
        proposer=net.keys[leader].public_key,
        txs=txs,
        validators_hash=net.genesis.validator_set().hash(),
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )
    entry = Entry(
        term=1,
        signer=leader,
        block=block,
        seal_signature=sign_seal(net.keys[leader], CHAIN, 1, block),
    )
    store = LevelDbChainStore(net.store_path(node))
    try:
        store.consensus_write(
            [
                durable.hard_state_record(1, leader),
                durable.entry_record(1, Entry(term=1, signer=leader, block=None)),
                durable.entry_record(2, entry),
            ]
        )
    finally:
        store.close()


async def test_a_restarted_follower_holds_the_txs_of_its_uncommitted_log_entries(
    tmp_path: Path,
) -> None:
    net = local_net(tmp_path, validators=3, consensus="raft")
    carried, fresh = _anchor(net, 1), _anchor(net, 2)
    net.store_path(0).parent.mkdir(parents=True, exist_ok=True)
    _store_uncommitted_entry(net, 0, (carried,))
    node = await net.start_node(0)  # alone: it stays a follower, the entry stays undecided
    try:
        assert node.driver.status().in_flight == 1
        assert carried.hash() in node.carried
        assert (await node.submit_tx(carried.encode())).code == 0  # re-offered after restart
        assert (await node.submit_tx(fresh.encode())).code == 0
        assert len(node.mempool) == 2
        assert node.mempool.pending_count() == 1, "the carried tx is held, not pending"
        assert node.mempool.reap(max_txs=10, max_bytes=1 << 20) == [fresh]
    finally:
        await node.stop()
