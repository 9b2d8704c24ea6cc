"""PBFT normal case (§4.2) and pipelining, driven through the in-test router."""

from __future__ import annotations

import msgspec
import pytest

from consensus.pbft import messages as m
from consensus.types import NodeId, Propose, Received
from protocol.crypto import DOMAIN_COMMIT_VOTE, verify
from protocol.seal import commit_vote_payload
from tests.consensus.pbft.pbft_harness import CHAIN_ID, Router


@pytest.mark.parametrize("node_count", [4, 7])
def test_validators_commit_a_sequence_of_blocks_with_quorum_seals(node_count: int) -> None:
    # §4.2: pre-prepare, prepare, commit; every replica commits the same chain, in order.
    router = Router(node_count)
    router.run_blocks(6)
    router.assert_agreement()
    quorum = router.validators.quorum
    for state in router.states:
        assert state.height >= 6
        for sealed in state.chain:
            assert len(sealed.seal.signatures) >= quorum
            assert sealed.invalid_for(router.validators) is None
            assert sealed.seal.round == 0


@pytest.mark.parametrize(("node_count", "quorum"), [(5, 4), (6, 4)])
def test_non_3f_plus_1_sizes_use_the_bft_quorum(node_count: int, quorum: int) -> None:
    # §4.2 with n != 3f + 1: a quorum is ceil((n + f + 1) / 2), not 2f + 1.
    router = Router(node_count)
    assert router.configs[0].quorum == quorum
    router.run_blocks(2)
    for sealed in router.states[0].chain:
        assert len(sealed.seal.signatures) >= quorum
    # With only quorum - 1 replicas able to vote, nothing more commits.
    for index in range(quorum - 1, node_count):
        if index != 0:
            router.crash(index)
    height = router.states[0].height
    router.propose(0)
    router.deliver_all()
    assert router.states[0].height == height
    assert router.engine(0).status().in_flight == 1


def test_commit_signature_is_exactly_the_seal_commit_vote() -> None:
    # The COMMIT of §4.2 is signed over DOMAIN_COMMIT_VOTE, so a quorum of COMMITs is the seal.
    router = Router(4)
    router.run_blocks(1)
    commits = [msg for _, _, msg in router.delivered if isinstance(msg, m.Commit)]
    assert commits
    for commit in commits:
        payload = commit_vote_payload(
            chain_id=CHAIN_ID, view=commit.view, height=commit.seq, block_hash=commit.digest
        )
        key = router.validators.public_keys[commit.replica]
        assert verify(key, DOMAIN_COMMIT_VOTE, payload, commit.signature)
    seal = router.states[1].chain[0].seal
    assert {index for index, _ in seal.signatures} <= {c.replica for c in commits} | {1}


def test_pipelining_keeps_up_to_p_blocks_in_flight() -> None:
    # Pipelining: the primary offers slot h while h - 1 is uncommitted, bounded by P
    # (the header of h attests the execution of h - P).
    router = Router(4, pipeline_depth=3)
    proposed = [router.propose(0) for _ in range(3)]
    status = router.engine(0).status()
    assert status.in_flight == 3
    assert status.proposal_slot is None  # height 4 needs height 1 executed
    # What the driver reads after every step is the same snapshot without `extra`.
    assert status.extra
    assert router.engine(0).step_status() == msgspec.structs.replace(status, extra={})
    assert [b.height for b in proposed] == [1, 2, 3]
    assert proposed[1].header.prev_hash == proposed[0].hash()
    router.deliver_all()
    assert all(state.height == 3 for state in router.states)
    slot = router.engine(0).status().proposal_slot
    assert slot is not None
    assert slot.height == 4
    router.run_blocks(5)
    router.assert_agreement()


def test_backup_prepares_in_seq_order_only() -> None:
    # Chain link rule: seq is prepared only after seq - 1 prepared in this view (or committed).
    router = Router(4)
    first = router.make_block(0)
    router.propose(0)
    router.queue.clear()  # nobody sees height 1's pre-prepare
    router.propose(0)  # height 2 links to height 1
    router.deliver_all()
    prepares = [msg for _, _, msg in router.delivered if isinstance(msg, m.Prepare)]
    assert prepares == []  # seq 2 waits for seq 1
    assert router.engine(1).log.get(2) is not None
    # Deliver height 1's pre-prepare: both prepare, in order, and commit.
    pre_prepare = router.engine(0).log.get(1).pre_prepare  # type: ignore[union-attr]
    assert pre_prepare is not None
    assert pre_prepare.block == first
    for backup in (1, 2, 3):
        router.step(backup, Received(sender=NodeId(0), message=pre_prepare))
    router.deliver_all()
    assert all(state.height == 2 for state in router.states)


def test_backup_rejects_pre_prepare_whose_exec_fields_disagree() -> None:
    # §4.2 acceptance: the header's exec fields must match our execution of seq - P.
    router = Router(4, pipeline_depth=1)
    router.run_blocks(1)
    block = router.make_block(0)
    forged = router.block_for(0, height=block.height, prev_hash=block.header.prev_hash)
    forged = type(forged)(
        header=type(forged.header)(
            **{
                **{f: getattr(forged.header, f) for f in forged.header.__dataclass_fields__},
                "exec_app_hash": bytes(32),
            }
        ),
        txs=(),
    )
    pre_prepare = m.make_pre_prepare(
        router.keys[0], chain_id=CHAIN_ID, view=0, seq=forged.height, block=forged, replica=0
    )
    router.step(1, Received(sender=NodeId(0), message=pre_prepare))
    assert router.engine(1).counters["pre_prepares_rejected"] == 1
    assert router.queue == type(router.queue)()


def test_pre_prepare_waits_for_execution_of_seq_minus_p() -> None:
    # Exec fields of seq attest seq - P; a backup that has not executed it yet buffers.
    router = Router(4, pipeline_depth=1)
    router.run_blocks(1)
    router.crash(3)
    block = router.make_block(0)
    router.restart(3)
    # Node 3 restarted from its records with height 1 committed; simulate "not executed yet".
    router.engine(3).executed_height = 0
    router.engine(3).executed.clear()
    router.step(0, Propose(block))
    source, _target, data = next(item for item in router.queue if item[1] == 3)
    router.queue.clear()
    message = router.codec.decode(data)
    router.step(3, Received(sender=NodeId(source), message=message))
    assert 2 in router.engine(3).pending
    notice = router.states[3].executed[0]
    router.step(3, notice)
    assert 2 not in router.engine(3).pending
    assert router.engine(3).log.get(2).pre_prepare is not None  # type: ignore[union-attr]


def test_primary_refuses_a_block_not_for_the_offered_slot() -> None:
    router = Router(4)
    block = router.block_for(0, height=2, prev_hash=bytes(32))
    router.step(0, Propose(block))
    assert router.engine(0).counters["proposals_refused"] == 1
    assert not router.queue


def test_votes_outside_the_watermarks_are_ignored_and_far_ones_buffered() -> None:
    # §4.3: only seqs in (h, H] enter the log; above H they wait (bounded), below h they go.
    router = Router(4, checkpoint_interval=4, window=8)
    digest = bytes(32)
    high = m.make_prepare(
        router.keys[2], chain_id=CHAIN_ID, view=0, seq=9, digest=digest, replica=2
    )
    low = m.make_prepare(router.keys[2], chain_id=CHAIN_ID, view=0, seq=0, digest=digest, replica=2)
    engine = router.engine(1)
    router.step(1, Received(sender=NodeId(2), message=high))
    router.step(1, Received(sender=NodeId(2), message=low))
    assert engine.log.get(9) is None
    assert engine.counters["future_buffered"] == 1
    assert engine.counters["ignored"] == 1
    # The per-peer buffer is bounded: the oldest go first, counted.
    for seq in range(10, 10 + engine.config.future_messages_per_peer_max):
        far = m.make_prepare(
            router.keys[2], chain_id=CHAIN_ID, view=0, seq=seq, digest=digest, replica=2
        )
        router.step(1, Received(sender=NodeId(2), message=far))
    assert engine.future.held_by(2) == engine.config.future_messages_per_peer_max
    assert engine.counters["future_dropped"] == 1
