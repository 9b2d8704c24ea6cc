"""Raft log replication: Figure 2 AppendEntries (both sides), §5.3, §5.4.2, thesis §10.2.

Leader. `Propose(block)` for the offered slot becomes a block entry of the current term,
sealed by the leader (its signature over chain, term, height and block hash), persisted, and
sent at once to every follower that has room: per follower the leader keeps nextIndex and
matchIndex (Progress). In the replicating state it advances nextIndex optimistically
(pipelining, at most `inflight_entries_max` entries unacknowledged, each AppendEntries
batched up to `max_entries_per_append` entries / `append_bytes_max` bytes); after a reject
it probes, one batch per heartbeat from the follower's hint. A follower whose nextIndex is at
or below the log base gets InstallSnapshot (snapshot.py). Commit (§5.4.2): the highest index
of the *current* term stored on a majority; earlier entries commit with it.

Follower. Reject if the log has no entry at prev_index with prev_term (the consistency
check, Figure 2 step 2); delete a conflicting entry and all after it (step 3; never a
committed one: that would break State Machine Safety, so it is an assertion); check each new
block (height and link to the tip, validator set, proposer, exec fields against our own
execution of height - P when we have it); append; persist; then acknowledge with the
matched index; commit up to min(leader_commit, last new index) (step 5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from consensus.raft import durable, election, snapshot
from consensus.raft import messages as m
from protocol.block import Block
from protocol.crypto import DOMAIN_RAFT_SEAL, ZERO_HASH, SigningKey

if TYPE_CHECKING:
    from consensus.outbox import Outbox
    from consensus.raft.engine import RaftEngine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (Figure 2 nextIndex / matchIndex, thesis §4.2)."""

    next_index: int
    match_index: int = 0
    probing: bool = True  # after a reject: one batch per heartbeat until a success
    snapshot_sent_at: int | None = None


# --- leader -----------------------------------------------------------------------------------


def become_leader(engine: RaftEngine, out: Outbox) -> None:
    assert engine.role == "candidate"
    assert engine.voted_for == engine.me
    engine.role = "leader"
    engine.leader = engine.me
    engine.votes.clear()
    engine.last_heard.clear()
    engine.leader_since = engine.now
    engine.heartbeat_elapsed = 0
    engine.transfer_target = None
    engine.counters["became_leader"] += 1
    next_index = engine.log.last_index + 1
    engine.progress = {
        peer: Progress(next_index=next_index) for peer in engine.peers() if peer != engine.me
    }
    log.info("raft node=%d term=%d leader at index=%d", engine.me, engine.term, next_index)
    # §8 / thesis §6.4: a no-op of the new term, so that entries of earlier terms commit.
    _append_own(engine, m.Entry(term=engine.term, signer=engine.me, block=None), out)
    broadcast_appends(engine, out)


def _append_own(engine: RaftEngine, entry: m.Entry, out: Outbox) -> None:
    engine.log.append(entry)
    out.persist.append(durable.entry_record(engine.log.last_index, entry))
    _maybe_commit(engine, out)  # a cluster of one commits alone


def on_propose(engine: RaftEngine, block: Block, out: Outbox) -> None:
    if (reason := _ignore_propose(engine, block)) is not None:
        engine.counters["proposals_ignored"] += 1
        log.debug("raft node=%d ignoring proposal h=%d: %s", engine.me, block.height, reason)
        return
    signature = sign_seal(engine.key, engine.config.chain_id, engine.term, block)
    entry = m.Entry(term=engine.term, signer=engine.me, block=block, seal_signature=signature)
    engine.counters["proposals"] += 1
    _append_own(engine, entry, out)
    for peer in sorted(engine.progress):
        if not engine.progress[peer].probing:
            send_append(engine, peer, out)


def sign_seal(key: SigningKey, chain_id: str, term: int, block: Block) -> bytes:
    return key.sign(
        DOMAIN_RAFT_SEAL,
        m.seal_payload(chain_id=chain_id, term=term, height=block.height, block_hash=block.hash()),
    )


def _ignore_propose(engine: RaftEngine, block: Block) -> str | None:
    slot = engine.proposal_slot()
    if slot is None:
        return "no open slot"
    if block.height != slot.height or block.header.prev_hash != slot.prev_hash:
        return f"slot is height {slot.height}"
    if block.header.proposer != engine.key.public_key:
        return "proposer is not this leader"
    return _block_invalid(engine, block)


def leader_tick(engine: RaftEngine, out: Outbox) -> None:
    if engine.role != "leader":
        return  # stepped down this tick (check-quorum)
    engine.heartbeat_elapsed += 1
    if engine.heartbeat_elapsed >= engine.config.heartbeat_ticks:
        engine.heartbeat_elapsed = 0
        broadcast_appends(engine, out)


def broadcast_appends(engine: RaftEngine, out: Outbox) -> None:
    for peer in sorted(engine.progress):
        send_append(engine, peer, out)


def send_append(engine: RaftEngine, peer: int, out: Outbox) -> None:
    """AppendEntries from the follower's nextIndex (a heartbeat if nothing is new), or
    InstallSnapshot if that index is compacted away."""
    config, lg = engine.config, engine.log
    progress = engine.progress[peer]
    if progress.next_index <= lg.base.index:
        snapshot.send_install(engine, peer, out)
        return
    room = config.inflight_entries_max - (progress.next_index - 1 - progress.match_index)
    entries: tuple[m.Entry, ...] = ()
    if progress.next_index <= lg.last_index and (room > 0 or progress.probing):
        entries = lg.slice(
            progress.next_index,
            count_max=min(config.max_entries_per_append, max(room, 1)),
            bytes_max=config.append_bytes_max,
        )
    prev_index = progress.next_index - 1
    prev_term = lg.term_at(prev_index)
    assert prev_term is not None
    message = m.AppendEntries(
        term=engine.term,
        sender=engine.me,
        prev_index=prev_index,
        prev_term=prev_term,
        entries=entries,
        leader_commit=engine.commit_index,
    )
    engine.send(out, peer, message)
    if not progress.probing:
        progress.next_index += len(entries)


def on_append_reply(
    engine: RaftEngine, sender: int, reply: m.AppendEntriesReply, out: Outbox
) -> None:
    if engine.role != "leader" or reply.term != engine.term:
        return
    progress = engine.progress[sender]
    if reply.success:
        if reply.index > engine.log.last_index:
            engine.counters["replies_beyond_log"] += 1
            return
        if reply.index > progress.match_index:
            progress.match_index = reply.index
            _maybe_commit(engine, out)
        progress.next_index = max(progress.next_index, reply.index + 1)
        progress.snapshot_sent_at = None
        was_probing, progress.probing = progress.probing, False
        election.maybe_send_timeout_now(engine, sender, out)
        if was_probing or progress.next_index <= engine.log.last_index:
            send_append(engine, sender, out)
        return
    engine.counters["appends_rejected"] += 1
    if reply.index < progress.match_index:
        return  # stale: the follower has since matched more
    progress.next_index = max(
        progress.match_index + 1, min(progress.next_index - 1, reply.index + 1)
    )
    progress.probing = True
    send_append(engine, sender, out)


def _maybe_commit(engine: RaftEngine, out: Outbox) -> None:
    """§5.4.2: commit the highest entry of the current term on a majority (counting us)."""
    lg = engine.log
    for index in range(lg.last_index, engine.commit_index, -1):
        if lg.term_at(index) != engine.term:
            break  # terms only decrease going back: no current-term entry below
        stored = 1 + sum(p.match_index >= index for p in engine.progress.values())
        if stored >= engine.config.majority:
            engine.advance_commit(index, out)
            return


# --- follower ---------------------------------------------------------------------------------


def on_append_entries(
    engine: RaftEngine, sender: int, message: m.AppendEntries, out: Outbox
) -> None:
    assert message.term == engine.term
    if engine.role == "leader":
        engine.counters["append_from_other_leader"] += 1  # Election Safety says impossible
        log.error("raft node=%d term=%d AppendEntries from %d", engine.me, engine.term, sender)
        return
    if engine.role != "follower" or engine.leader != sender:
        election.become_follower(engine, engine.term, leader=sender, out=out)
    election.reset_timer(engine)
    lg = engine.log
    prev_index, entries = message.prev_index, message.entries
    if prev_index < lg.base.index:
        # Everything at or below the base is committed, so it matches the leader's log.
        skip = lg.base.index - prev_index
        entries, prev_index = entries[skip:], lg.base.index
    elif lg.term_at(prev_index) != message.prev_term:
        _reply(engine, sender, out, success=False, index=_hint(engine, prev_index))
        engine.counters["append_consistency_rejects"] += 1
        return
    matched = _store_entries(engine, prev_index, entries, out)
    if message.leader_commit > engine.commit_index:
        engine.advance_commit(min(message.leader_commit, matched), out)
    _reply(engine, sender, out, success=True, index=matched)


def _hint(engine: RaftEngine, prev_index: int) -> int:
    """Where the leader should retry from (minus one): our last index if we are short, else
    before the whole run of the conflicting term (the thesis's fast backup, §5.3)."""
    lg = engine.log
    if prev_index > lg.last_index:
        return lg.last_index
    return max(lg.base.index, lg.first_index_of_term(prev_index) - 1)


def _store_entries(
    engine: RaftEngine, prev_index: int, entries: tuple[m.Entry, ...], out: Outbox
) -> int:
    """Figure 2 steps 3-4; returns the last index known to match the leader's log."""
    lg = engine.log
    index = prev_index
    for entry in entries:
        existing = lg.term_at(index + 1)
        if existing == entry.term:
            index += 1
            continue  # Log Matching: same index and term, same entry
        if existing is not None:
            assert index + 1 > engine.commit_index, "Figure 3: a committed entry never changes"
            removed = lg.truncate_after(index)
            out.persist.extend(durable.entry_deletes(removed))
            engine.counters["entries_truncated"] += len(removed)
        if entry.block is not None and (reason := _entry_block_invalid(engine, entry)) is not None:
            engine.counters["entries_rejected"] += 1
            log.warning("raft node=%d rejecting entry %d: %s", engine.me, index + 1, reason)
            break
        lg.append(entry)
        index += 1
        out.persist.append(durable.entry_record(index, entry))
    return index


def _entry_block_invalid(engine: RaftEngine, entry: m.Entry) -> str | None:
    block = entry.block
    assert block is not None
    lg = engine.log
    if block.height != lg.last_height + 1:
        return f"block height {block.height} after log height {lg.last_height}"
    if block.header.prev_hash != lg.tip_hash:
        return "block does not link to the log's tip"
    if block.header.proposer != engine.config.validators.public_keys[entry.signer]:
        return "proposer is not the entry's signer"
    return _block_invalid(engine, block)


def _block_invalid(engine: RaftEngine, block: Block) -> str | None:
    """Checks of a block against the chain: validator set and exec fields (P lag)."""
    if block.header.validators_hash != engine.validators_hash:
        return "validators hash is not genesis's"
    if (reason := block.invalid()) is not None:
        return reason
    exec_height = max(block.height - engine.config.pipeline_depth, 0)
    header = block.header
    if header.exec_height != exec_height:
        return f"exec height {header.exec_height}, want {exec_height}"
    if exec_height == 0:
        if (header.exec_app_hash, header.exec_results_root) != (ZERO_HASH, ZERO_HASH):
            return "exec fields of height 0 must be zero"
        return None
    executed = engine.executed.get(exec_height)
    if executed is not None and (header.exec_app_hash, header.exec_results_root) != (
        executed.app_hash,
        executed.results_root,
    ):
        return f"exec fields disagree with our execution of height {exec_height}"
    return None


def _reply(engine: RaftEngine, leader: int, out: Outbox, *, success: bool, index: int) -> None:
    reply = m.AppendEntriesReply(term=engine.term, sender=engine.me, success=success, index=index)
    engine.send(out, leader, reply)
