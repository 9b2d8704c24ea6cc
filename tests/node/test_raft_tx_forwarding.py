"""Raft followers send txs to the leader only (node/network.py, `txs_to_leader`): a
follower forwards its clients' txs to the leader, the leader floods its own (so they
outlive it), a new leader is offered every tx waiting at a follower, and without a
reachable leader txs are flooded as PBFT's are. Validator 1 of a 3-validator Raft
genesis, not started, its gossip counted by a stub transport (tests/node/gossip_rig.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.node.gossip_rig import ME, OBSERVER, Rig, anchors, gossip_rig, settle

LEADER = 0
OTHER_FOLLOWER = 2


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with gossip_rig(tmp_path, consensus="raft", validators=3) as made:
        yield made


async def submit(rig: Rig, count: int) -> list[bytes]:
    """Txs from this node's own client, through the RPC's path; their hashes."""
    txs = anchors(rig.agency, count)
    results = await rig.node.submit_txs([tx.encode() for tx in txs])
    assert all(result.code == 0 for result in results), results
    return [tx.hash() for tx in txs]


def key(rig: Rig, index: int) -> bytes:
    return rig.keys[index].public_key


async def test_a_follower_forwards_its_clients_txs_to_the_leader_alone(rig: Rig) -> None:
    rig.set_leader(LEADER)
    await submit(rig, 12)
    assert rig.sent_to() == {key(rig, LEADER): 12}
    assert len(rig.node.mempool) == 12, "the follower keeps custody until they commit"


async def test_the_leader_floods_its_clients_txs_so_they_outlive_it(rig: Rig) -> None:
    rig.set_leader(ME)
    await submit(rig, 12)
    assert rig.sent_to() == {key(rig, LEADER): 12, key(rig, OTHER_FOLLOWER): 12}
    assert len(rig.node.mempool) == 12


async def test_without_a_leader_txs_are_flooded_and_kept_in_standby_by_the_others(
    rig: Rig,
) -> None:
    await submit(rig, 7)  # no step has named a leader yet: an election
    assert rig.sent_to() == {key(rig, LEADER): 7, key(rig, OTHER_FOLLOWER): 7}


async def test_a_leader_this_node_cannot_reach_does_not_strand_txs(rig: Rig) -> None:
    rig.set_leader(LEADER)
    rig.stub.peers.remove(key(rig, LEADER))
    await submit(rig, 5)
    assert rig.sent_to() == {key(rig, OTHER_FOLLOWER): 5}


async def test_a_new_leader_is_offered_every_waiting_tx_once(rig: Rig) -> None:
    rig.set_leader(LEADER)
    hashes = await submit(rig, 10)
    rig.set_leader(LEADER)  # the same leader again: nothing new to offer
    assert rig.sent_to() == {key(rig, LEADER): 10}
    rig.set_leader(None)  # an election ...
    rig.set_leader(OTHER_FOLLOWER)  # ... won by the other follower
    assert rig.sent_to() == {key(rig, LEADER): 10, key(rig, OTHER_FOLLOWER): 10}
    later = await submit(rig, 3)
    assert rig.sent_to() == {key(rig, LEADER): 10, key(rig, OTHER_FOLLOWER): 13}
    assert len(set(hashes + later)) == 13


async def test_a_leader_that_steps_down_does_not_send_its_txs_again(rig: Rig) -> None:
    rig.set_leader(ME)
    await submit(rig, 6)
    rig.set_leader(OTHER_FOLLOWER)
    assert rig.sent_to() == {key(rig, LEADER): 6, key(rig, OTHER_FOLLOWER): 6}
    await submit(rig, 2)
    assert rig.sent_to() == {key(rig, LEADER): 6, key(rig, OTHER_FOLLOWER): 8}


async def test_only_the_leader_is_offered_txs_when_it_reconnects(rig: Rig) -> None:
    rig.set_leader(LEADER)
    rig.stub.peers.clear()  # cut off from everyone: the txs are flooded to no one
    await submit(rig, 4)
    rig.connect(OTHER_FOLLOWER)
    assert rig.sent_to() == {}, "a follower does not need them"
    rig.connect(LEADER)
    assert rig.sent_to() == {key(rig, LEADER): 4}


async def test_the_leader_admits_forwarded_txs_and_relays_nothing(rig: Rig) -> None:
    rig.set_leader(ME)
    rig.receive(key(rig, OTHER_FOLLOWER), anchors(rig.agency, 9))
    await settle()
    assert len(rig.node.mempool) == 9
    assert rig.sent_to() == {}


async def test_a_follower_relays_an_observers_txs_to_the_leader_alone(rig: Rig) -> None:
    rig.set_leader(LEADER)
    rig.receive(OBSERVER, anchors(rig.agency, 5))
    await settle()
    assert len(rig.node.mempool) == 5
    assert rig.sent_to() == {key(rig, LEADER): 5}
