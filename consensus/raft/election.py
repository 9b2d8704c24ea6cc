"""Raft leader election: Figure 2 "Rules for Servers" and RequestVote, §5.2, §5.4.1, with
pre-vote (thesis §9.6), check-quorum and the voter's leader lease (thesis §6.2, §4.2.3) and
leadership transfer (thesis §3.10).

Terms. Any message with a higher term makes us a follower of that term (Figure 2), except:
a pre-vote request (nobody changes term for it), a granted pre-vote reply (it carries the
term the candidate would use), and — with check-quorum — a vote request arriving while we
still hear from a leader (the lease; a TimeoutNow-started election bypasses it). A message
with a lower term is stale: AppendEntries and InstallSnapshot get a reply carrying our term
so the stale leader steps down, a pre-vote gets a refusal with our term so the pre-candidate
learns it, anything else is dropped.

Pre-vote: a node whose timer fires first asks for pre-votes at term + 1 without changing
anything durable; only with a majority of pre-votes does it bump its term. So a node that
was partitioned away, and keeps timing out, cannot inflate terms and depose a healthy leader.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consensus.raft import messages as m
from consensus.raft import replication

if TYPE_CHECKING:
    from consensus.outbox import Outbox
    from consensus.raft.engine import RaftEngine

log = logging.getLogger(__name__)


def reset_timer(engine: RaftEngine) -> None:
    """§5.2: a fresh randomised timeout in [min, max] ticks from the injected RNG."""
    config = engine.config
    engine.elapsed = 0
    engine.timeout = engine.rng.randint(config.election_timeout_ticks, config.timeout_ticks_max)


def in_lease(engine: RaftEngine) -> bool:
    """Thesis §4.2.3: a follower that heard from a leader within the minimum election
    timeout ignores vote requests, so a disruptive server cannot depose a live leader."""
    if not engine.config.check_quorum:
        return False
    if engine.role == "leader":
        return True
    return engine.leader is not None and engine.elapsed < engine.config.election_timeout_ticks


# --- terms ------------------------------------------------------------------------------------


def accept_term(engine: RaftEngine, sender: int, message: object, out: Outbox) -> bool:
    """Apply the term rules above; False if the message needs no further handling."""
    if not isinstance(
        message,
        m.RequestVote
        | m.RequestVoteReply
        | m.AppendEntries
        | m.AppendEntriesReply
        | m.InstallSnapshot
        | m.TimeoutNow,
    ):
        engine.counters["ignored_unknown_message"] += 1
        return False
    if message.term > engine.term:
        if isinstance(message, m.RequestVote):
            if in_lease(engine) and not message.transfer:
                engine.counters["votes_ignored_in_lease"] += 1
                return False
            if message.pre_vote:
                return True  # answered without changing our term (§9.6)
            become_follower(engine, message.term, leader=None, out=out)
            return True
        if isinstance(message, m.RequestVoteReply) and message.pre_vote and message.granted:
            return True
        leader = sender if isinstance(message, m.AppendEntries | m.InstallSnapshot) else None
        become_follower(engine, message.term, leader=leader, out=out)
        return True
    if message.term < engine.term:
        engine.counters["stale_term_messages"] += 1
        if isinstance(message, m.AppendEntries | m.InstallSnapshot):
            reply = m.AppendEntriesReply(
                term=engine.term, sender=engine.me, success=False, index=engine.log.last_index
            )
            engine.send(out, sender, reply)
        elif isinstance(message, m.RequestVote) and message.pre_vote:
            reply_vote = m.RequestVoteReply(
                term=engine.term, sender=engine.me, granted=False, pre_vote=True
            )
            engine.send(out, sender, reply_vote)
        return False
    return True


def become_follower(engine: RaftEngine, term: int, *, leader: int | None, out: Outbox) -> None:
    if term > engine.term:
        engine.term = term
        engine.voted_for = None
        engine.persist_hard_state(out)
    if engine.role != "follower" or engine.leader != leader:
        log.info("raft node=%d term=%d follower of %s", engine.me, engine.term, leader)
    engine.role = "follower"
    engine.leader = leader
    engine.votes.clear()
    engine.progress.clear()
    engine.transfer_target = None
    reset_timer(engine)


# --- timers ------------------------------------------------------------------------------------


def follower_tick(engine: RaftEngine, out: Outbox) -> None:
    engine.elapsed += 1
    if engine.elapsed < engine.timeout:
        return
    if engine.snapshot_pending:
        reset_timer(engine)  # still rebuilding the chain: no business leading it
        return
    campaign(engine, out, pre_vote=engine.config.pre_vote, transfer=False)


def leader_tick(engine: RaftEngine, out: Outbox) -> None:
    config = engine.config
    window = config.election_timeout_ticks
    if config.check_quorum and engine.now - engine.leader_since >= window:
        heard = 1 + sum(engine.now - at < window for at in engine.last_heard.values())
        if heard < config.majority:
            engine.counters["check_quorum_step_downs"] += 1
            log.info("raft node=%d term=%d lost its quorum: stepping down", engine.me, engine.term)
            become_follower(engine, engine.term, leader=None, out=out)
            return
    if engine.transfer_target is not None:
        engine.transfer_elapsed += 1
        if engine.transfer_elapsed >= config.election_timeout_ticks:
            engine.counters["transfers_aborted"] += 1
            engine.transfer_target = None


# --- campaigning -------------------------------------------------------------------------------


def campaign(engine: RaftEngine, out: Outbox, *, pre_vote: bool, transfer: bool) -> None:
    reset_timer(engine)
    engine.leader = None
    engine.votes = {engine.me}
    if pre_vote:
        engine.role = "pre-candidate"
        term = engine.term + 1
        engine.counters["pre_votes_started"] += 1
    else:
        engine.role = "candidate"
        engine.term += 1
        engine.voted_for = engine.me
        engine.persist_hard_state(out)
        term = engine.term
        engine.counters["elections_started"] += 1
    log.info("raft node=%d term=%d %s", engine.me, term, engine.role)
    if len(engine.votes) >= engine.config.majority:
        _won(engine, out)
        return
    request = m.RequestVote(
        term=term,
        sender=engine.me,
        last_index=engine.log.last_index,
        last_term=engine.log.last_term,
        pre_vote=pre_vote,
        transfer=transfer,
    )
    engine.send(out, None, request)


def _won(engine: RaftEngine, out: Outbox) -> None:
    if engine.role == "pre-candidate":
        campaign(engine, out, pre_vote=False, transfer=False)
    else:
        replication.become_leader(engine, out)


def on_request_vote(engine: RaftEngine, sender: int, request: m.RequestVote, out: Outbox) -> None:
    """Figure 2 RequestVote receiver: grant if we have not voted for another in this term
    and the candidate's log is at least as up-to-date as ours (§5.4.1)."""
    can_vote = (
        engine.voted_for == sender
        or (engine.voted_for is None and engine.leader is None)
        or (request.pre_vote and request.term > engine.term)
    )
    up_to_date = engine.log.up_to_date(last_index=request.last_index, last_term=request.last_term)
    granted = can_vote and up_to_date
    if granted and not request.pre_vote:
        assert request.term == engine.term
        engine.voted_for = sender
        engine.persist_hard_state(out)  # durable before the reply leaves
        reset_timer(engine)
    engine.counters["votes_granted" if granted else "votes_refused"] += 1
    reply_term = request.term if granted and request.pre_vote else engine.term
    reply = m.RequestVoteReply(
        term=reply_term, sender=engine.me, granted=granted, pre_vote=request.pre_vote
    )
    engine.send(out, sender, reply)


def on_vote_reply(engine: RaftEngine, sender: int, reply: m.RequestVoteReply, out: Outbox) -> None:
    if reply.pre_vote:
        if engine.role != "pre-candidate" or reply.term != engine.term + 1:
            return
    elif engine.role != "candidate" or reply.term != engine.term:
        return
    if not reply.granted:
        return
    engine.votes.add(sender)
    if len(engine.votes) >= engine.config.majority:
        _won(engine, out)


# --- leadership transfer (thesis §3.10) ---------------------------------------------------------


def begin_transfer(engine: RaftEngine, target: int | None, out: Outbox) -> None:
    if engine.role != "leader" or len(engine.progress) == 0:
        return
    if target is None or target not in engine.progress:
        target = max(sorted(engine.progress), key=lambda peer: engine.progress[peer].match_index)
    engine.transfer_target = target
    engine.transfer_elapsed = 0
    engine.counters["transfers_started"] += 1
    log.info("raft node=%d term=%d transferring leadership to %d", engine.me, engine.term, target)
    maybe_send_timeout_now(engine, target, out)
    if engine.transfer_target is not None:
        replication.send_append(engine, target, out)


def maybe_send_timeout_now(engine: RaftEngine, peer: int, out: Outbox) -> None:
    """Once the target's log matches ours, tell it to campaign at once."""
    if engine.transfer_target != peer:
        return
    if engine.progress[peer].match_index == engine.log.last_index:
        engine.send(out, peer, m.TimeoutNow(term=engine.term, sender=engine.me))


def on_timeout_now(engine: RaftEngine, sender: int, message: m.TimeoutNow, out: Outbox) -> None:
    if engine.role == "leader" or engine.snapshot_pending:
        return
    assert message.term == engine.term
    engine.counters["timeout_now_received"] += 1
    campaign(engine, out, pre_vote=False, transfer=True)
