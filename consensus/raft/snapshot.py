"""Raft log compaction and snapshot install (§7, Figure 13), by way of block sync.

Compaction. The state machine's snapshot is the committed chain plus the service state,
which the node keeps anyway (blocks are stored forever). So compacting the log is just
moving its base: once a height is executed, entries at or below (executed height -
`log_retention_heights`) are dropped from memory and from durable state, in steps of
`compaction_step_heights`. The retention lets a briefly lagging follower catch up from the
log rather than by snapshot.

Install. A leader whose follower needs an entry at or below its base sends
InstallSnapshot(last_index, last_term, last_height, block_hash), a reference rather than
the data. The follower, if its log already holds (last_index, last_term), keeps the entries
after it (§7); otherwise it discards its log, makes the snapshot its base (durably) and,
while its chain store is below `last_height`, asks the node to fetch the sealed blocks from
peers (`Output.fetch`). Each fetched block must extend the chain, link, carry a leader seal
that verifies against the genesis validator set, and the block at `last_height` must have
the snapshot's hash. When the chain reaches the base the follower acknowledges the leader
and resumes normal replication. A restart in the middle resumes the fetch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consensus.raft import durable, election
from consensus.raft import messages as m
from consensus.raft.log import LogBase
from consensus.types import BlockExecuted, FetchRequest, NodeId
from protocol.seal import SEAL_LEADER
from protocol.sealed import SealedBlock

if TYPE_CHECKING:
    from consensus.outbox import Outbox
    from consensus.raft.engine import RaftEngine

log = logging.getLogger(__name__)


# --- compaction --------------------------------------------------------------------------------


def on_executed(engine: RaftEngine, event: BlockExecuted, out: Outbox) -> None:
    assert event.height == engine.executed_height + 1, "blocks execute in height order"
    assert event.height <= engine.committed_height, "only committed blocks execute"
    engine.executed_height = event.height
    engine.executed[event.height] = event
    prune_executed(engine)
    _maybe_compact(engine, out)


def prune_executed(engine: RaftEngine) -> None:
    """Keep the notices a block's exec-field check can still need: heights >= executed - P."""
    floor = engine.executed_height - engine.config.pipeline_depth
    for height in [h for h in engine.executed if h < floor]:
        del engine.executed[height]


def _maybe_compact(engine: RaftEngine, out: Outbox) -> None:
    config, lg = engine.config, engine.log
    target = engine.executed_height - config.log_retention_heights
    if engine.snapshot_pending or target - lg.base.height < config.compaction_step_heights:
        return
    index = lg.index_of_height(target)
    assert index is not None
    assert lg.base.index < index <= engine.applied_index
    dropped = lg.compact_to(index)
    out.persist.extend(durable.entry_deletes(dropped))
    out.persist.append(durable.base_record(lg.base))
    engine.counters["compactions"] += 1
    log.debug("raft node=%d compacted to index=%d height=%d", engine.me, index, target)


# --- leader side -------------------------------------------------------------------------------


def send_install(engine: RaftEngine, peer: int, out: Outbox) -> None:
    """Once per election timeout per follower: the follower may be busy fetching."""
    progress = engine.progress[peer]
    sent_at = progress.snapshot_sent_at
    if sent_at is not None and engine.now - sent_at < engine.config.election_timeout_ticks:
        return
    progress.snapshot_sent_at = engine.now
    base = engine.log.base
    engine.counters["snapshots_sent"] += 1
    message = m.InstallSnapshot(
        term=engine.term,
        sender=engine.me,
        last_index=base.index,
        last_term=base.term,
        last_height=base.height,
        block_hash=base.block_hash,
    )
    engine.send(out, peer, message)


# --- follower side -----------------------------------------------------------------------------


def on_install_snapshot(
    engine: RaftEngine, sender: int, message: m.InstallSnapshot, out: Outbox
) -> None:
    assert message.term == engine.term
    if engine.role == "leader":
        engine.counters["append_from_other_leader"] += 1
        return
    if engine.role != "follower" or engine.leader != sender:
        election.become_follower(engine, engine.term, leader=sender, out=out)
    election.reset_timer(engine)
    lg = engine.log
    if message.last_index <= engine.commit_index:
        _acknowledge(engine, out, engine.commit_index)  # old news: we hold all of it
        return
    if lg.term_at(message.last_index) == message.last_term:
        engine.advance_commit(message.last_index, out)  # §7: keep the entries after it
        _acknowledge(engine, out, message.last_index)
        return
    base = LogBase(
        index=message.last_index,
        term=message.last_term,
        height=message.last_height,
        block_hash=message.block_hash,
    )
    if base.height < engine.committed_height:
        engine.counters["snapshots_refused"] += 1
        log.error("raft node=%d snapshot below our committed chain: refused", engine.me)
        return
    dropped = lg.reset(base)
    out.persist.extend(durable.entry_deletes(dropped))
    out.persist.append(durable.base_record(base))
    engine.commit_index = engine.applied_index = base.index
    engine.counters["snapshots_installed"] += 1
    log.info(
        "raft node=%d term=%d installing snapshot index=%d height=%d",
        engine.me,
        engine.term,
        base.index,
        base.height,
    )
    if engine.snapshot_pending:
        request_fetch(engine, out, peer=sender)
    else:
        _acknowledge(engine, out, base.index)


def follower_tick(engine: RaftEngine, out: Outbox) -> None:
    if not engine.snapshot_pending:
        return
    engine.fetch_elapsed += 1
    if engine.fetch_elapsed >= engine.config.fetch_retry_ticks:
        engine.counters["fetch_retries"] += 1
        request_fetch(engine, out, peer=None)  # let the driver pick another peer


def request_fetch(engine: RaftEngine, out: Outbox, *, peer: int | None) -> None:
    assert engine.snapshot_pending
    start = engine.committed_height + 1
    end = min(engine.log.base.height, engine.committed_height + engine.config.fetch_batch_max)
    hint = None if peer is None or peer == engine.me else NodeId(peer)
    out.fetch.append(FetchRequest(from_height=start, to_height=end, peer=hint))
    engine.fetch_elapsed = 0


def on_fetched(
    engine: RaftEngine, sender: int, blocks: tuple[SealedBlock, ...], out: Outbox
) -> None:
    if not engine.snapshot_pending:
        engine.counters["fetched_ignored"] += 1
        return
    progressed = False
    for sealed in blocks:
        if sealed.height <= engine.committed_height:
            continue
        if (reason := _fetched_invalid(engine, sealed)) is not None:
            engine.counters["fetched_rejected"] += 1
            log.warning("raft node=%d fetched block %d from %d: %s", engine.me, sealed.height,
                        sender, reason)  # fmt: skip
            break
        out.commit.append(sealed)
        engine.committed_height, engine.committed_hash = sealed.height, sealed.block.hash()
        progressed = True
        if _caught_up(engine):
            break
    if _caught_up(engine):
        log.info("raft node=%d caught up to the snapshot at height=%d", engine.me,
                 engine.committed_height)  # fmt: skip
        engine.emit_commits(out)
        if engine.leader is not None:
            _acknowledge(engine, out, engine.log.base.index)
    elif progressed:
        request_fetch(engine, out, peer=sender)


def _caught_up(engine: RaftEngine) -> bool:
    return engine.committed_height >= engine.log.base.height


def _fetched_invalid(engine: RaftEngine, sealed: SealedBlock) -> str | None:
    block = sealed.block
    if block.height != engine.committed_height + 1:
        return f"gap: expected height {engine.committed_height + 1}"
    if block.header.chain_id != engine.config.chain_id:
        return "another chain"
    if block.header.prev_hash != engine.committed_hash:
        return "does not link to the committed chain"
    base = engine.log.base
    if block.height == base.height and block.hash() != base.block_hash:
        return "the snapshot's block has another hash"
    if sealed.seal.kind != SEAL_LEADER:
        return "not a Raft leader seal"
    return sealed.invalid_for(engine.config.validators)


def _acknowledge(engine: RaftEngine, out: Outbox, index: int) -> None:
    if engine.leader is None or engine.leader == engine.me:
        return
    reply = m.AppendEntriesReply(term=engine.term, sender=engine.me, success=True, index=index)
    engine.send(out, engine.leader, reply)
