"""Checkpoints and GC (§4.3), durability across restarts, catch-up with seal checks."""

from __future__ import annotations

from dataclasses import replace

from consensus.pbft import durable
from consensus.pbft import messages as m
from consensus.types import Fetched, NodeId, Received
from protocol.sealed import SealedBlock
from tests.consensus.pbft.pbft_harness import CHAIN_ID, Router


def test_checkpoint_quorum_becomes_stable_and_garbage_collects_the_log() -> None:
    # §4.3: a quorum of matching CHECKPOINTs at a multiple of K moves h and drops the log.
    router = Router(4, checkpoint_interval=4, window=8)
    router.run_blocks(9)
    for index, engine in enumerate(router.engines):
        assert engine is not None
        assert engine.checkpoints.stable.seq == 8
        assert engine.log.low == 8
        assert all(seq > 8 for seq in engine.log.seqs())
        assert len(engine.checkpoints.stable.proof) >= router.validators.quorum
        # Durable records at or below h are gone; the stable checkpoint is recorded.
        keys = router.states[index].durable
        assert durable.STABLE_KEY in keys
        for seq in range(1, 9):
            assert durable.certificate_key(seq) not in keys
            for kind in durable.VOTE_KINDS:
                assert durable.vote_key(kind, seq) not in keys


def test_log_never_goes_beyond_the_high_watermark() -> None:
    # §4.3: with checkpoints withheld, the primary stops at h + L and offers no slot.
    router = Router(4, checkpoint_interval=4, window=8, pipeline_depth=1)
    router.drop = lambda source, target, message: isinstance(message, m.Checkpoint)
    router.run_blocks(8)
    assert router.engine(0).status().proposal_slot is None
    router.drop = lambda source, target, message: False
    router.tick(10)  # stalled: checkpoints are re-sent and become stable
    assert router.engine(0).status().proposal_slot is not None
    router.run_blocks(2)


def test_pre_prepare_above_high_watermark_is_buffered_then_used() -> None:
    # Fabric #1119: the primary may move its watermarks first; a backup that has not seen
    # the checkpoint quorum yet buffers the pre-prepare above its H instead of dropping it.
    router = Router(4, checkpoint_interval=4, window=8, pipeline_depth=1)
    router.drop = lambda source, target, message: target == 3 and isinstance(message, m.Checkpoint)
    router.run_blocks(8)
    assert router.engine(0).log.low == 8
    assert router.engine(3).log.low == 0
    router.propose(0)  # seq 9: above node 3's high watermark 0 + 8
    router.deliver_all()
    assert router.engine(3).counters["future_buffered"] >= 1
    assert router.engine(3).log.get(9) is None
    router.drop = lambda source, target, message: False
    router.tick(10)  # stalled: checkpoints are re-sent; h moves at node 3; the buffer replays
    assert router.engine(3).log.low == 8
    assert all(state.height == 9 for state in router.states)
    router.assert_agreement()


def test_restarted_replica_never_signs_a_conflicting_prepare() -> None:
    # Durability: votes are persisted before sending; after a restart the same (view, seq)
    # never gets a PREPARE for another digest.
    router = Router(4)
    router.drop = lambda source, target, message: isinstance(message, m.Prepare | m.Commit)
    first = router.propose(0, salt=1)
    router.deliver_all()
    assert router.engine(2).votes[(durable.VOTE_PREPARE, 1)] == first.hash()
    router.crash(2)
    router.restart(2)
    engine = router.engine(2)
    assert engine.votes[(durable.VOTE_PREPARE, 1)] == first.hash()
    other = router.block_for(0, height=1, prev_hash=bytes(32), salt=2)
    conflicting = m.make_pre_prepare(
        router.keys[0], chain_id=CHAIN_ID, view=0, seq=1, block=other, replica=0
    )
    output = router.step(2, Received(sender=NodeId(0), message=conflicting))
    assert not output.send
    assert engine.counters["pre_prepares_rejected"] == 1
    # The original digest is still accepted and voted for again (same vote, no conflict).
    original = m.make_pre_prepare(
        router.keys[0], chain_id=CHAIN_ID, view=0, seq=1, block=first, replica=0
    )
    output = router.step(2, Received(sender=NodeId(0), message=original))
    assert [type(e.message) for e in output.send] == [m.Prepare]


def test_restarted_primary_does_not_reuse_a_proposed_seq() -> None:
    router = Router(4)
    router.drop = lambda source, target, message: True
    router.propose(0, salt=1)
    router.crash(0)
    router.restart(0)
    slot = router.engine(0).status().proposal_slot
    assert slot is not None
    assert slot.height == 2


def test_restart_keeps_view_and_prepared_certificates() -> None:
    # §4.4 needs the prepared certificates after a restart: they are persisted with the block.
    router = Router(4)
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    block = router.propose(0)
    router.deliver_all()
    router.crash(1)
    router.restart(1)
    certificate = router.engine(1).log.get(1).certificate  # type: ignore[union-attr]
    assert certificate is not None
    assert certificate.pre_prepare.block == block
    assert router.codec.certificate_invalid(certificate) is None


def test_undecided_blocks_are_the_pre_prepared_and_certified_blocks_above_the_commit() -> None:
    # The node holds these blocks' txs out of its own proposals; after a restart only the
    # prepared certificates are left, and they still count (a new view re-proposes them).
    router = Router(4)
    router.run_blocks(1)
    assert router.engine(1).undecided_blocks() == ()
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    prepared = router.propose(0)  # seq 2: prepares everywhere, commits nowhere
    router.deliver_all()
    router.drop = lambda source, target, message: True
    pre_prepared = router.propose(0)  # seq 3: reaches no backup
    assert router.engine(0).undecided_blocks() == (prepared, pre_prepared)
    assert router.engine(1).undecided_blocks() == (prepared,)
    router.crash(1)
    router.restart(1)
    assert router.engine(1).undecided_blocks() == (prepared,), "the certificate survives"
    router.crash(0)
    router.restart(0)
    assert router.engine(0).undecided_blocks() == (prepared,), "the bare pre-prepare does not"
    router.drop = lambda source, target, message: False
    router.tick(40)  # a view change re-proposes seq 2; it commits
    assert router.states[1].chain[1].block == prepared
    assert all(engine.undecided_blocks() == () for engine in router.engines if engine)


def test_lagging_replica_catches_up_and_rejects_a_forged_seal() -> None:
    # Catch-up: fetched blocks are committed only if every seal verifies.
    router = Router(4, checkpoint_interval=4, window=8)
    router.crash(3)
    router.run_blocks(9)
    router.restart(3)
    router.serve_fetches = False
    router.tick(10)  # stalled: the others re-send their checkpoint for h = 8
    assert router.engine(3).checkpoints.stable.seq == 8
    assert router.fetch_requests[-1][0] == 3
    good = tuple(router.states[0].chain[:4])
    forged_seal = replace(
        good[0].seal, signatures=tuple((i, bytes(64)) for i, _ in good[0].seal.signatures)
    )
    forged = (SealedBlock(block=good[0].block, seal=forged_seal), *good[1:])
    output = router.step(3, Fetched(sender=NodeId(1), blocks=forged))
    assert not output.commit
    assert router.engine(3).counters["fetched_rejected"] == 1
    assert router.states[3].height == 0
    assert output.fetch
    assert output.fetch[0].peer != 1
    router.step(3, Fetched(sender=NodeId(2), blocks=good))
    assert router.states[3].height == 4
    router.serve_fetches = True
    router.tick(12)  # the retry goes out and is answered
    assert router.states[3].height >= 8
    router.assert_agreement()


def test_stable_checkpoint_above_committed_height_triggers_fetch() -> None:
    router = Router(4, checkpoint_interval=4, window=8)
    router.drop = lambda source, target, message: target == 3
    live_target = 8
    while router.states[0].height < live_target:
        router.propose(router.primary())
        router.deliver_all()
    router.drop = lambda source, target, message: False
    router.tick(10)
    assert router.engine(3).checkpoints.stable.seq == 8
    assert router.states[3].height >= 8
    router.assert_agreement()


def test_restart_in_the_middle_of_a_view_change_keeps_the_view_and_resends() -> None:
    # Durability of the view: a replica that moved to view 1 never comes back in view 0.
    router = Router(4)
    router.run_blocks(1)
    router.start_view_change(1, 1)
    router.deliver_all()
    router.crash(1)
    router.restart(1)
    engine = router.engine(1)
    assert engine.view == 1
    assert not engine.active
    before = len(router.delivered)
    router.tick(12)  # stalled: the view change is re-sent, rebuilt from the records
    resent = [
        message
        for source, _, message in router.delivered[before:]
        if source == 1 and isinstance(message, m.ViewChange)
    ]
    assert resent
    assert resent[0].new_view == 1
