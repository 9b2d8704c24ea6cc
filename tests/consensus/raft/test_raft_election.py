"""Raft leader election, driven through the in-test router: Figure 2 (RequestVote, Rules for
Servers), §5.2, §5.4.1, and the thesis's pre-vote (§9.6), check-quorum and leader lease
(§6.2, §4.2.3), leadership transfer (§3.10)."""

from __future__ import annotations

import random

import pytest

from consensus.raft import durable
from consensus.raft import messages as m
from consensus.raft.engine import RaftEngine, RaftStateLost
from consensus.types import NodeId, Received
from tests.consensus.raft.raft_harness import ELECTION_TIMEOUT_TICKS, Router


def _request_vote(router: Router, sender: int, *, term: int, last_index: int, last_term: int,
                  pre_vote: bool = False) -> m.RequestVote:  # fmt: skip
    request = m.RequestVote(
        term=term, sender=sender, last_index=last_index, last_term=last_term, pre_vote=pre_vote
    )
    return m.sign_message(router.params.keys[sender], router.params.chain_id, request)


def _replies(output_sends: tuple[object, ...]) -> list[m.RequestVoteReply]:
    return [
        envelope.message  # type: ignore[attr-defined]
        for envelope in output_sends
        if isinstance(envelope.message, m.RequestVoteReply)  # type: ignore[attr-defined]
    ]


def test_election_timeout_is_randomised_from_the_injected_rng_section_5_2() -> None:
    router = Router(3)
    config = router.config(0)
    timeouts = set()
    for seed in range(20):
        engine = RaftEngine(
            config,
            key=router.params.keys[0],
            restored={},
            committed_height=0,
            committed_hash=bytes(32),
            rng=random.Random(seed),
        )
        assert ELECTION_TIMEOUT_TICKS <= engine.timeout < 2 * ELECTION_TIMEOUT_TICKS
        timeouts.add(engine.timeout)
    assert len(timeouts) > 3, "timeouts must spread so that split votes resolve"
    again = RaftEngine(
        config,
        key=router.params.keys[0],
        restored={},
        committed_height=0,
        committed_hash=bytes(32),
        rng=random.Random(7),
    )
    first = RaftEngine(
        config,
        key=router.params.keys[0],
        restored={},
        committed_height=0,
        committed_hash=bytes(32),
        rng=random.Random(7),
    )
    assert again.timeout == first.timeout, "the same seed gives the same schedule"


def test_candidate_with_a_majority_becomes_leader_and_appends_a_noop_figure_2() -> None:
    router = Router(3)
    router.elect(0)
    leader = router.engines[0]
    assert leader.role == "leader"
    assert leader.term == 1
    assert leader.status().leader == NodeId(0)
    # §8: the new leader's first entry is a no-op of its term, replicated and committed.
    entry = leader.log.entry(1)
    assert entry.block is None
    assert entry.term == 1
    assert leader.commit_index == 1
    for node in (1, 2):
        assert router.engines[node].role == "follower"
        assert router.engines[node].leader == 0
        assert router.engines[node].log.last_index == 1


def test_one_vote_per_term_and_it_is_durable_before_the_reply_figure_2_request_vote() -> None:
    router = Router(3, pre_vote=False)
    voter = router.engines[2]
    output = router.step(2, Received(NodeId(0), _request_vote(router, 0, term=1, last_index=0,
                                                              last_term=0)))  # fmt: skip
    (granted,) = _replies(output.send)
    assert granted.granted
    assert durable.hard_state_record(1, 0) in output.persist  # votedFor persisted first
    assert voter.voted_for == 0
    output = router.step(2, Received(NodeId(1), _request_vote(router, 1, term=1, last_index=5,
                                                              last_term=1)))  # fmt: skip
    (refused,) = _replies(output.send)
    assert not refused.granted, "Election Safety: at most one vote per term"
    assert voter.voted_for == 0


def test_vote_refused_to_a_candidate_whose_log_is_less_up_to_date_section_5_4_1() -> None:
    router = Router(3, pre_vote=False)
    router.elect(0)
    router.propose(0)
    router.deliver()
    assert router.engines[2].log.last_index == 2
    # Node 1 campaigns with a log ending at (index 1, term 1): behind node 2's (2, 1).
    request = _request_vote(router, 1, term=5, last_index=1, last_term=1)
    router.engines[2].elapsed = ELECTION_TIMEOUT_TICKS  # outside the leader lease
    output = router.step(2, Received(NodeId(1), request))
    (reply,) = _replies(output.send)
    assert not reply.granted
    assert router.engines[2].term == 5, "the higher term is still adopted (Figure 2)"
    # A later last term wins even with a shorter log.
    request = _request_vote(router, 1, term=6, last_index=1, last_term=4)
    router.engines[2].elapsed = ELECTION_TIMEOUT_TICKS
    (reply,) = _replies(router.step(2, Received(NodeId(1), request)).send)
    assert reply.granted


def test_pre_vote_does_not_bump_terms_of_an_isolated_node_thesis_9_6() -> None:
    router = Router(3)
    router.crash(1)
    router.crash(2)
    before = dict(router.persisted[0])
    router.tick(0, 10 * ELECTION_TIMEOUT_TICKS)
    engine = router.engines[0]
    assert engine.role == "pre-candidate"
    assert engine.term == 0
    assert engine.counters["pre_votes_started"] >= 5
    assert router.persisted[0] == before, "a pre-vote writes nothing durable"


def test_rejoining_node_does_not_disrupt_a_healthy_leader_thesis_9_6() -> None:
    router = Router(3)
    router.elect(0)
    router.isolated.add(2)
    for _ in range(6 * ELECTION_TIMEOUT_TICKS):  # node 2 times out again and again, alone
        router.tick(2)
    assert router.engines[2].role == "pre-candidate"
    assert router.engines[2].term == 1
    router.isolated.clear()
    for _ in range(3 * ELECTION_TIMEOUT_TICKS):
        router.tick(0)
        router.tick(1)
        router.tick(2)
        router.deliver()
    assert router.engines[0].role == "leader"
    assert router.engines[0].term == 1, "the returning node did not inflate the term"
    assert router.engines[2].leader == 0


def test_without_pre_vote_a_partitioned_node_inflates_its_term() -> None:
    """The contrast case for the test above (why §9.6 exists)."""
    router = Router(3, pre_vote=False, check_quorum=False)
    router.crash(1)
    router.crash(2)
    router.tick(0, 5 * ELECTION_TIMEOUT_TICKS)
    assert router.engines[0].term >= 3


def test_higher_term_in_any_message_turns_a_leader_into_a_follower_figure_2() -> None:
    router = Router(3, check_quorum=False)
    router.elect(0)
    reply = m.sign_message(
        router.params.keys[1],
        router.params.chain_id,
        m.AppendEntriesReply(term=7, sender=1, success=False, index=0),
    )
    output = router.step(0, Received(NodeId(1), reply))
    leader = router.engines[0]
    assert leader.role == "follower"
    assert leader.term == 7
    assert leader.voted_for is None
    assert durable.hard_state_record(7, None) in output.persist


def test_leader_that_lost_its_majority_steps_down_thesis_6_2() -> None:
    router = Router(3)
    router.elect(0)
    router.crash(1)
    router.crash(2)
    router.tick(0, ELECTION_TIMEOUT_TICKS + 1)
    assert router.engines[0].role == "follower"
    assert router.engines[0].counters["check_quorum_step_downs"] == 1
    assert router.engines[0].status().proposal_slot is None


def test_leader_with_a_majority_keeps_leading_thesis_6_2() -> None:
    router = Router(3)
    router.elect(0)
    router.crash(2)
    for _ in range(4 * ELECTION_TIMEOUT_TICKS):
        router.tick(0)
        router.tick(1)
        router.deliver()
    assert router.engines[0].role == "leader"


def test_follower_in_a_leader_lease_ignores_a_disruptive_vote_request_thesis_4_2_3() -> None:
    router = Router(3, pre_vote=False)
    router.elect(0)
    request = _request_vote(router, 2, term=9, last_index=50, last_term=8)
    output = router.step(1, Received(NodeId(2), request))
    assert not output.send
    assert router.engines[1].term == 1
    assert router.engines[1].counters["votes_ignored_in_lease"] == 1


def test_restart_keeps_term_vote_and_log_figure_2_persistent_state() -> None:
    router = Router(3, pre_vote=False)
    router.elect(0)
    router.propose(0)
    router.deliver()
    router.heartbeat(0)
    voter = router.engines[2]
    voter.elapsed = ELECTION_TIMEOUT_TICKS
    router.step(2, Received(NodeId(1), _request_vote(router, 1, term=2, last_index=2,
                                                     last_term=1)))  # fmt: skip
    assert voter.voted_for == 1
    last_index = voter.log.last_index
    router.crash(2)
    restarted = router.start(2, seed=3)
    assert restarted.term == 2
    assert restarted.voted_for == 1
    assert restarted.log.last_index == last_index
    assert restarted.committed_height == 1
    output = router.step(2, Received(NodeId(0), _request_vote(router, 0, term=2, last_index=2,
                                                              last_term=1)))  # fmt: skip
    (reply,) = _replies(output.send)
    assert not reply.granted, "the vote of term 2 survived the restart"


def test_leadership_transfer_hands_over_with_timeout_now_thesis_3_10() -> None:
    router = Router(3)
    router.elect(0)
    router.propose(0)
    router.deliver()
    output = router.engines[0].transfer_leadership()
    router.absorb(0, output)
    assert router.engines[0].status().proposal_slot is None, "no proposals while handing over"
    router.deliver()
    new_leaders = [node for node in (1, 2) if router.engines[node].role == "leader"]
    assert len(new_leaders) == 1
    assert router.engines[new_leaders[0]].term == 2
    assert router.engines[0].role == "follower"
    assert router.engines[0].leader == new_leaders[0]


def test_node_whose_raft_records_were_lost_refuses_to_start() -> None:
    """Raft assumes stable storage: a node with its chain but without its term, vote and
    log could vote twice in a term, so it must be wiped and resynced, not restarted."""
    router = Router(3)
    router.elect(0)
    router.propose(0)
    router.deliver()
    router.heartbeat(0)
    assert router.heights()[2] == 1
    router.crash(2)
    router.persisted[2].clear()
    with pytest.raises(RaftStateLost, match="Wipe the node"):
        router.start(2)


def test_status_reports_kind_role_term_and_leader() -> None:
    router = Router(3)
    follower = router.engines[1].status()
    assert (follower.kind, follower.role, follower.round, follower.leader) == (
        "raft",
        "follower",
        0,
        None,
    )
    router.elect(0)
    leader = router.engines[0].status()
    assert (leader.kind, leader.role, leader.round, leader.leader) == ("raft", "leader", 1, 0)
    assert leader.proposal_slot is not None
    assert leader.extra["fault_model"] == "crash"
    assert router.engines[1].status().leader == 0
    assert router.engines[1].status().proposal_slot is None, "only the leader proposes"
