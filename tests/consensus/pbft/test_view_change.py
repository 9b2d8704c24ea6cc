"""PBFT view changes (§4.4, §4.5.2) through the in-test router."""

from __future__ import annotations

from dataclasses import replace

from consensus.outbox import Outbox
from consensus.pbft import messages as m
from consensus.types import NodeId, Propose, Received
from tests.consensus.pbft.pbft_harness import CHAIN_ID, Router


def test_primary_crash_leads_to_view_change_and_nothing_committed_is_lost() -> None:
    # §4.4: backups with pending work time out, move to view 1, and the new primary continues.
    router = Router(4)
    router.run_blocks(3)
    before = [sealed.block.hash() for sealed in router.states[1].chain]
    router.propose(0)  # pending work the backups hold ...
    router.queue.clear()
    router.crash(0)  # ... and the primary dies with it undelivered
    for index in (1, 2, 3):
        router.engine(index).request_height = 4  # their nodes hold txs for height 4
    router.tick(60)
    assert all(router.engine(i).view == 1 and router.engine(i).active for i in (1, 2, 3))
    router.run_blocks(3)
    for index in (1, 2, 3):
        chain = [sealed.block.hash() for sealed in router.states[index].chain]
        assert chain[:3] == before
        assert router.states[index].chain[-1].seal.round == 1
    router.assert_agreement()


def test_prepared_but_uncommitted_block_survives_a_view_change() -> None:
    # §4.4: a block prepared at a quorum re-appears in NEW-VIEW's O and commits in view 1.
    router = Router(4)
    router.run_blocks(2)
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    block = router.propose(0)
    router.deliver_all()
    assert all(router.engine(i).log.get(3).prepared for i in range(4))  # type: ignore[union-attr]
    assert all(state.height == 2 for state in router.states)
    # Old primary cut off, view-0 COMMITs still lost: only a view change can commit seq 3.
    router.drop = lambda source, target, message: (
        source == 0 or target == 0 or (isinstance(message, m.Commit) and message.view == 0)
    )
    router.tick(80)
    assert all(router.engine(i).view >= 1 for i in (1, 2, 3))
    router.drop = lambda source, target, message: False
    router.tick(20)
    for state in router.states[1:]:
        assert state.height >= 3
        assert state.chain[2].block.hash() == block.hash()
        assert state.chain[2].seal.round >= 1
    router.assert_agreement()


def test_equivocating_primary_is_detected_and_replaced() -> None:
    # §4.2 / §4.4: two signed pre-prepares for one (view, seq) are evidence; view change.
    router = Router(4)
    first = router.make_block(0, salt=1)
    second = router.make_block(0, salt=2)
    assert first.hash() != second.hash()
    messages = [
        m.make_pre_prepare(router.keys[0], chain_id=CHAIN_ID, view=0, seq=1, block=b, replica=0)
        for b in (first, second)
    ]
    router.step(1, Received(sender=NodeId(0), message=messages[0]))
    router.step(1, Received(sender=NodeId(0), message=messages[1]))
    engine = router.engine(1)
    assert engine.counters["equivocations"] == 1
    assert list(engine.evidence) == [(messages[0], messages[1])]
    assert engine.view == 1
    assert not engine.active
    assert engine.votes.get((2, 1)) is None  # no prepare for the second digest


def test_backup_rejects_pre_prepare_with_conflicting_digest_same_view_seq() -> None:
    # §4.2: a backup accepts at most one digest per (view, seq), before or after committing.
    router = Router(4)
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    first = router.propose(0, salt=1)
    router.deliver_all()
    assert router.engine(2).log.get(1).prepared  # type: ignore[union-attr]
    conflicting = router.block_for(0, height=1, prev_hash=bytes(32), salt=2)
    pre_prepare = m.make_pre_prepare(
        router.keys[0], chain_id=CHAIN_ID, view=0, seq=1, block=conflicting, replica=0
    )
    output = router.step(2, Received(sender=NodeId(0), message=pre_prepare))
    prepares = [e.message for e in output.send if isinstance(e.message, m.Prepare)]
    assert prepares == []
    assert router.engine(2).votes.get((2, 1)) is None  # view 1 now: no vote at all
    certificate = router.engine(2).log.get(1).certificate  # type: ignore[union-attr]
    assert certificate is not None
    assert certificate.digest == first.hash()  # the prepared digest is kept


def test_backups_reject_new_view_whose_o_differs_from_v() -> None:
    # §4.4: every replica recomputes O from V and rejects a NEW-VIEW that differs.
    router = Router(4)
    router.run_blocks(2)
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    router.propose(0)
    router.deliver_all()
    router.drop = lambda source, target, message: isinstance(message, m.NewView | m.Commit)
    for index in range(4):
        router.engine(index).request_height = 3
    router.crash(0)
    router.tick(40)
    new_primary = router.engine(1)
    assert new_primary.active
    assert new_primary.view == 1
    honest = new_primary.views.new_view
    assert honest is not None
    assert [pp.seq for pp in honest.pre_prepares] == [1, 2, 3]  # min-s = 0, max-s = 3
    # The byzantine variant drops seq 3 (prepared at a quorum) from O.
    forged = m.sign_message(
        router.keys[1], CHAIN_ID, replace(honest, pre_prepares=honest.pre_prepares[:2])
    )
    assert router.codec.invalid(forged, NodeId(1)) is None  # well-signed ...
    router.step(2, Received(sender=NodeId(1), message=forged))
    assert router.engine(2).counters["malformed_new_view"] == 1  # ... but rejected
    assert not router.engine(2).active
    router.step(2, Received(sender=NodeId(1), message=honest))
    assert router.engine(2).active
    assert router.engine(2).view == 1


def test_f_plus_one_view_changes_pull_a_replica_into_the_smallest_higher_view() -> None:
    # §4.5.2 rule 2: f + 1 VIEW-CHANGEs for views above ours make us join.
    router = Router(4)
    router.run_blocks(1)
    for sender, view in ((2, 3), (3, 2)):
        view_change = router.engine(sender).views._make_own()
        view_change = m.sign_message(
            router.keys[sender], CHAIN_ID, replace(view_change, new_view=view)
        )
        router.step(1, Received(sender=NodeId(sender), message=view_change))
    engine = router.engine(1)
    assert engine.view == 2
    assert not engine.active
    # One VIEW-CHANGE alone (at most f faulty) never moves a replica.
    lone = m.sign_message(
        router.keys[3], CHAIN_ID, replace(router.engine(3).views._make_own(), new_view=5)
    )
    router.step(0, Received(sender=NodeId(3), message=lone))
    assert router.engine(0).view == 0


def test_view_change_timeout_backs_off_exponentially() -> None:
    # §4.5.2: each view change in a row without progress doubles the timeout.
    router = Router(4, timeout_ticks=4)
    engine = router.engine(1)
    first = engine.views.timeout_ticks()
    engine.views.start(1, Outbox())
    second = engine.views.timeout_ticks()
    assert second == 2 * first


def test_backup_slot_propose_starts_the_request_timer() -> None:
    # A Propose at a backup is the paper's forwarded request: the primary must order it.
    router = Router(4, backups_offer_slots=True)
    slot = router.engine(1).status().proposal_slot
    assert slot is not None
    block = router.block_for(1, height=slot.height, prev_hash=slot.prev_hash)
    output = router.step(1, Propose(block))
    assert not output.send  # a backup never pre-prepares
    router.crash(0)
    router.tick(40)
    assert router.engine(1).view >= 1


def test_replica_that_missed_new_view_rejoins_through_f_plus_one_later_messages() -> None:
    # §4.5.2 in spirit: normal-case messages of a later view from f + 1 replicas make a
    # replica join that view's change; the new primary re-sends its NEW-VIEW to it.
    router = Router(4)
    router.run_blocks(1)
    router.drop = lambda source, target, message: target == 3  # node 3 hears nothing
    for index in (0, 1, 2):
        router.start_view_change(index, 1)
    router.deliver_all()
    assert all(router.engine(i).view == 1 for i in (0, 1, 2))
    assert router.engine(1).active
    assert router.engine(3).view == 0
    router.drop = lambda source, target, message: False
    router.run_blocks(2)
    assert router.engine(3).view == 1
    assert router.engine(3).active
    router.assert_agreement()
    assert router.states[3].height == router.states[1].height
