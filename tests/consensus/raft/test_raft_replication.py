"""Raft log replication and commitment, driven through the in-test router: Figure 2
(AppendEntries receiver steps 1-5, Rules for Leaders), §5.3, §5.4.2, and Figure 3's
properties on small hand-built histories."""

from __future__ import annotations

import msgspec

from consensus.raft import durable
from consensus.raft import messages as m
from consensus.types import NodeId, Propose, Received
from protocol.crypto import DOMAIN_RAFT_SEAL, verify
from protocol.seal import SEAL_LEADER
from tests.consensus.raft.raft_harness import Router


def _append(router: Router, leader: int, **fields: object) -> m.AppendEntries:
    message = m.AppendEntries(sender=leader, **fields)  # type: ignore[arg-type]
    return m.sign_message(router.params.keys[leader], router.params.chain_id, message)


def _reply_of(output_sends: tuple[object, ...]) -> m.AppendEntriesReply:
    (reply,) = [
        envelope.message  # type: ignore[attr-defined]
        for envelope in output_sends
        if isinstance(envelope.message, m.AppendEntriesReply)  # type: ignore[attr-defined]
    ]
    return reply


def test_every_node_commits_the_same_leader_sealed_blocks_in_height_order() -> None:
    router = Router(5)
    router.elect(0)
    for _ in range(6):
        assert router.propose(0) is not None
        router.deliver()
    router.heartbeat(0)
    assert router.heights() == [6] * 5
    reference = [sealed.block.hash() for sealed in router.chains[0]]
    for node in range(5):
        chain = router.chains[node]
        assert [sealed.block.hash() for sealed in chain] == reference
        for height, sealed in enumerate(chain, start=1):
            assert sealed.height == height
            assert sealed.seal.kind == SEAL_LEADER
            assert sealed.seal.round == 1, "the seal carries the entry's term"
            assert sealed.seal.signatures[0][0] == 0, "signed by the leader"
            assert sealed.invalid_for(router.params.validators) is None


def test_leader_persists_its_entry_before_sending_it_figure_2() -> None:
    router = Router(3)
    router.elect(0)
    slot = router.engines[0].status().proposal_slot
    assert slot is not None
    block = router.block_for(0, slot.height, slot.prev_hash)
    output = router.step(0, Propose(block))
    index = router.engines[0].log.last_index
    assert output.persist[0][0] == durable.entry_key(index)
    appends = [e.message for e in output.send if isinstance(e.message, m.AppendEntries)]
    assert appends, "pipelined at once to every replicating follower"
    assert all(a.entries[-1].block == block for a in appends)
    # The seal signature travels inside the entry: the leader signed when it proposed.
    entry = router.engines[0].log.entry(index)
    payload = m.seal_payload(
        chain_id=router.params.chain_id, term=1, height=block.height, block_hash=block.hash()
    )
    assert verify(router.params.keys[0].public_key, DOMAIN_RAFT_SEAL, payload,
                  entry.seal_signature)  # fmt: skip


def test_follower_persists_entries_before_acknowledging_them_figure_2() -> None:
    router = Router(3)
    router.elect(0)
    router.propose(0)
    (sender, target, message) = next(
        item for item in router.take() if isinstance(item[2], m.AppendEntries) and item[1] == 1
    )
    output = router.step(target, Received(NodeId(sender), message))
    reply = _reply_of(output.send)
    assert reply.success
    assert reply.index == 2
    assert durable.entry_key(2) in [key for key, _ in output.persist]


def test_append_rejected_when_log_lacks_prev_entry_figure_2_step_2() -> None:
    router = Router(3)
    router.elect(0)
    stale = _append(router, 0, term=1, prev_index=5, prev_term=1, entries=(), leader_commit=1)
    reply = _reply_of(router.step(1, Received(NodeId(0), stale)).send)
    assert not reply.success
    assert reply.index == 1, "hint: our last index, so the leader backs up at once"
    wrong_term = _append(router, 0, term=1, prev_index=1, prev_term=0, entries=(),
                         leader_commit=1)  # fmt: skip
    reply = _reply_of(router.step(1, Received(NodeId(0), wrong_term)).send)
    assert not reply.success


def test_stale_term_append_is_refused_with_our_term_figure_2_step_1() -> None:
    router = Router(3)
    router.elect(0)
    router.engines[1].term = 4  # as if it had moved on to a later term
    old = _append(router, 0, term=1, prev_index=1, prev_term=1, entries=(), leader_commit=1)
    reply = _reply_of(router.step(1, Received(NodeId(0), old)).send)
    assert not reply.success
    assert reply.term == 4


def test_conflicting_uncommitted_entries_are_truncated_and_replaced_figure_2_step_3() -> None:
    router = Router(3, check_quorum=False)
    router.elect(0)
    # Node 0 (term 1) appends a block only it holds, then loses leadership.
    router.propose(0)
    router.inbox.clear()
    orphan = router.engines[0].log.entry(2)
    assert orphan.block is not None
    router.isolated.add(0)
    router.elect(1)  # term 2; its log is [noop1, noop2]
    router.propose(1)
    router.deliver()
    assert router.engines[1].term == 2
    router.isolated.clear()
    router.heartbeat(1)
    router.heartbeat(1)
    old = router.engines[0]
    assert old.role == "follower"
    assert old.log.term_at(2) == 2, "the term-1 entry at index 2 was replaced"
    assert old.counters["entries_truncated"] >= 1
    assert durable.entry_key(2) in router.persisted[0]
    assert all(sealed.block != orphan.block for sealed in router.chains[0])
    assert router.heights() == [1, 1, 1]


def test_leader_commits_earlier_term_entries_only_through_a_current_term_entry_5_4_2() -> None:
    """Figure 8: an entry of an earlier term stored on a majority is *not* committed by
    counting; it commits once an entry of the leader's own term is on a majority."""
    router = Router(3, check_quorum=False, max_entries_per_append=1)
    router.elect(0)
    router.propose(0)  # index 2, term 1: held by node 0 only
    router.inbox.clear()
    router.crash(0)
    router.start(0)
    router.isolated.add(2)

    def without_index_3(sender: int, target: int, message: object) -> bool:
        """Drop index 3 on its way to a follower that could store it."""
        if not isinstance(message, m.AppendEntries) or not message.entries:
            return True
        reaches_3 = message.prev_index + len(message.entries) >= 3
        return not (reaches_3 and router.engines[target].log.last_index >= 2)

    while router.engines[0].role == "follower":
        router.tick(0)
    router.deliver(only=without_index_3)  # term 2; the no-op is index 3
    leader = router.engines[0]
    assert leader.role == "leader"
    assert leader.term == 2
    assert leader.log.term_at(2) == 1
    router.tick(0, 2)
    router.deliver(only=without_index_3)
    assert leader.progress[1].match_index == 2, "index 2 (term 1) is on a majority"
    assert leader.commit_index < 2, "…but earlier-term entries never commit by counting"
    router.heartbeat(0)
    assert leader.commit_index == 3
    assert router.heights()[0] == 1, "index 2's block committed with the no-op"


def test_undecided_blocks_are_the_log_blocks_above_the_commit_and_survive_a_restart() -> None:
    """The node holds these blocks' txs out of its own proposals: the log survives a
    restart, the pool does not, and a leader of a later term still commits them."""
    router = Router(3)
    router.elect(0)
    first = router.propose(0)
    router.deliver()
    router.heartbeat(0)
    assert router.heights() == [1, 1, 1]
    assert router.engines[1].undecided_blocks() == ()
    second = router.propose(0)
    third = router.propose(0)
    router.deliver(only=lambda sender, target, message: isinstance(message, m.AppendEntries))
    assert first is not None
    assert second is not None
    assert third is not None
    assert router.engines[0].undecided_blocks() == (second, third)
    assert router.engines[1].undecided_blocks() == (second, third)
    router.crash(1)
    router.start(1)
    assert router.engines[1].undecided_blocks() == (second, third)
    router.crash(0)
    for _ in range(200):  # until node 2's pre-vote no longer remembers leader 0
        if router.engines[1].role == "leader":
            break
        router.tick(1)
        router.tick(2)
        router.deliver()
    router.heartbeat(1)  # its term began with a no-op, which commits the earlier blocks
    assert router.heights()[1:] == [3, 3]
    assert router.engines[1].undecided_blocks() == ()


def test_follower_commit_index_is_min_of_leader_commit_and_last_new_entry_figure_2_step_5() -> None:
    router = Router(3)
    router.elect(0)
    entry = m.Entry(term=1, signer=0, block=None)
    message = _append(router, 0, term=1, prev_index=1, prev_term=1, entries=(entry,),
                      leader_commit=9)  # fmt: skip
    reply = _reply_of(router.step(1, Received(NodeId(0), message)).send)
    assert reply.success
    assert router.engines[1].commit_index == 2


def test_follower_rejects_a_block_that_does_not_extend_its_log() -> None:
    router = Router(3)
    router.elect(0)
    block = router.block_for(0, 2, b"\x07" * 32)  # a gap: the log holds no height 1
    signature = router.engines[0].key.sign(
        DOMAIN_RAFT_SEAL,
        m.seal_payload(chain_id=router.params.chain_id, term=1, height=2,
                       block_hash=block.hash()),
    )  # fmt: skip
    entry = m.Entry(term=1, signer=0, block=block, seal_signature=signature)
    message = _append(router, 0, term=1, prev_index=1, prev_term=1, entries=(entry,),
                      leader_commit=1)  # fmt: skip
    assert router.codec.invalid(message, NodeId(0)) is None, "stateless checks pass"
    reply = _reply_of(router.step(1, Received(NodeId(0), message)).send)
    assert reply.success
    assert reply.index == 1, "acknowledged only what matched"
    assert router.engines[1].log.last_index == 1
    assert router.engines[1].counters["entries_rejected"] == 1


def test_pipelining_keeps_several_blocks_in_flight_within_the_window() -> None:
    router = Router(3, uncommitted_entries_max=3)
    router.elect(0)
    router.heartbeat(0)
    proposed = 0
    while router.propose(0) is not None:
        proposed += 1
        assert proposed <= 3
    # P = 2: height 3 needs height 1 executed, so two blocks can be in flight at once.
    assert proposed == 2
    leader = router.engines[0]
    assert leader.status().in_flight == 2
    # What the driver reads after every step is the same snapshot without `extra`.
    assert leader.step_status() == msgspec.structs.replace(leader.status(), extra={})
    router.deliver()
    router.heartbeat(0)
    assert router.heights() == [2, 2, 2]


def test_lagging_follower_catches_up_in_batches_after_probing() -> None:
    router = Router(3, max_entries_per_append=2)
    router.elect(0)
    router.isolated.add(2)
    for _ in range(7):
        router.propose(0)
        router.deliver()
    router.isolated.clear()
    for _ in range(6):
        router.heartbeat(0)
    assert router.heights() == [7, 7, 7]
    assert router.engines[0].progress[2].match_index == router.engines[0].log.last_index
