"""The PBFT engine: Castro & Liskov (OSDI '99, TOCS 2002) over blocks, as a pure state machine.

Sequence number = block height, the block is the batch. `step(event) -> Output` and nothing
else: no clock (ticks are events), no I/O (persist / send / commit / fetch are returned, in
that order), no global randomness. docs/PBFT.md is the long form; in short:

    §4.2 normal case   the primary of view v (validators[v mod n]) turns the node's `Propose`
                       into PRE-PREPARE; backups check it and send PREPARE; a quorum
                       (protocol.quorum.bft_quorum, 2f+1 when n = 3f+1) makes it prepared and
                       each replica sends COMMIT, whose signature is the seal's commit vote;
                       a quorum of COMMITs from one view commits it, strictly in height order
                       (voting.py: when to PREPARE, COMMIT and commit; this file: what enters
                       the log).
    chain link         a backup prepares seq only when seq - 1 is committed with hash
                       prev_hash, or prepared in this view with digest prev_hash. This makes
                       prepared certificates contiguous, so NEW-VIEW never needs null blocks.
    §4.3 checkpoints   checkpoint.py; every K heights after execution; a quorum is stable:
                       the log and durable records below it are dropped.
    §4.4 view change   view_changes.py (handlers) and view_change.py (the pure O function).
    catch-up           catchup.py: fetch sealed blocks, verify every seal, commit.

State owned here: view / active flag, the message log (log.py), committed and executed
heights with the hashes the link and exec-field checks need, pending pre-prepares waiting
for execution of seq - P, per-peer buffers of future messages, timers (in ticks).

`check_invariants` runs after every step (assertions stay on in production).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Mapping, Sequence

from consensus.outbox import Outbox
from consensus.pbft import durable
from consensus.pbft import messages as m
from consensus.pbft.catchup import CatchUp
from consensus.pbft.checkpoint import CheckpointTracker
from consensus.pbft.checkpointing import Checkpointing
from consensus.pbft.config import PbftConfig
from consensus.pbft.log import FutureBuffer, MessageLog
from consensus.pbft.recovery import Recovery
from consensus.pbft.validation import WAIT_FOR_EXECUTION, block_invalid
from consensus.pbft.view_changes import ViewChanges
from consensus.pbft.voting import Voting
from consensus.types import (
    NO_EXTRA,
    BlockExecuted,
    EngineStatus,
    Envelope,
    Event,
    Fetched,
    NodeId,
    Output,
    ProposalSlot,
    Propose,
    Received,
    Tick,
)
from protocol.block import Block
from protocol.crypto import HASH_BYTES, ZERO_HASH, SigningKey
from protocol.sealed import SealedBlock

log = logging.getLogger(__name__)

EVIDENCE_MAX = 8  # equivocation evidence pairs kept for operators
PEER_FAULT_COUNTERS = frozenset({"rejected", "malformed_new_view"})


class PbftEngine:
    def __init__(
        self,
        config: PbftConfig,
        *,
        key: SigningKey,
        restored: Mapping[bytes, bytes],
        committed_height: int,
        committed_hash: bytes,
        executed: Sequence[BlockExecuted] = (),
        rng: random.Random,
    ) -> None:
        """`executed` should cover at least the heights (committed - P, committed] (older
        ones are ignored); the exec-field check of a pre-prepare at seq needs seq - P."""
        config.check()
        assert key.public_key == config.validators.public_keys[config.node_id], "wrong key"
        assert len(committed_hash) == HASH_BYTES
        assert committed_height >= 0
        self.config = config
        self.key = key
        self.me = config.node_id
        self.rng = rng  # unused by the protocol today; injected so timers may jitter later
        self.validators_hash = config.validators.hash()
        state = durable.restore(restored, replica_count=config.replica_count)
        self.view = state.view
        self.active = state.active
        self.votes: dict[tuple[int, int], bytes] = dict(state.votes)  # current view only
        per_replica = config.watermark_window_seqs // config.checkpoint_interval_seqs + 2
        self.checkpoints = CheckpointTracker(
            stable=state.stable, quorum=config.quorum, per_replica_max=per_replica
        )
        self.log = MessageLog(
            low=state.stable.seq, window=config.watermark_window_seqs, view=self.view
        )
        for seq, certificate in sorted(state.certificates.items()):
            if self.log.in_window(seq):
                self.log.slot(seq).certificate = certificate
        self.committed_height = committed_height
        self.committed_hash = committed_hash
        self.chain_hashes: dict[int, bytes] = {committed_height: committed_hash}
        self.executed: dict[int, BlockExecuted] = {}
        self.executed_height = 0
        self.checkpointing = Checkpointing(self)
        self.voting = Voting(self)
        keep = config.watermark_window_seqs + config.pipeline_depth + 1
        for notice in list(executed)[-keep:]:
            self.checkpointing.remember_execution(notice)
        self.pending: dict[int, m.PrePrepare] = {}  # seq -> pre-prepare waiting for seq - P
        self.future = FutureBuffer(per_peer_max=config.future_messages_per_peer_max)
        self.counters: Counter[str] = Counter()
        self.evidence: deque[tuple[m.PrePrepare, m.PrePrepare]] = deque(maxlen=EVIDENCE_MAX)
        self.catchup = CatchUp(
            node_id=self.me,
            replica_count=config.replica_count,
            batch_max=config.fetch_batch_max,
            retry_ticks=config.fetch_retry_ticks,
        )
        self.views = ViewChanges(self)
        self.recovery = Recovery(self)
        self.now = 0
        self.timer_deadline: int | None = None
        self.request_height: int | None = None  # a backup's node holds txs for this height
        self.next_seq = self._initial_next_seq()
        self.replay_wanted = False
        if self.committed_height < self.log.low:
            self.catchup.target = self.log.low
        self.check_invariants()

    # --- the contract -------------------------------------------------------------------------

    def step(self, event: Event) -> Output:
        out = Outbox()
        if isinstance(event, Tick):
            self._on_tick(out)
        elif isinstance(event, Received):
            self.on_message(NodeId(event.sender), event.message, out)
        elif isinstance(event, Propose):
            self._on_propose(event.block, out)
        elif isinstance(event, BlockExecuted):
            self.checkpointing.on_executed(event, out)
            self._retry_pending(out)
        elif isinstance(event, Fetched):
            self.recovery.on_fetched(event, out)
        else:
            raise AssertionError(f"unknown event {type(event).__name__}")
        while self.replay_wanted:
            self.replay_wanted = False
            self._replay_future(out)
        self.check_invariants()
        return out.freeze()

    def status(self) -> EngineStatus:
        """The full snapshot, for RPC and metrics."""
        extra: dict[str, int | str] = dict(sorted(self.counters.items()))
        extra.update(
            low_watermark=self.log.low,
            high_watermark=self.log.high,
            stable_checkpoint=self.checkpoints.stable.seq,
            executed_height=self.executed_height,
            evidence=len(self.evidence),
        )
        return self._status(extra)

    def step_status(self) -> EngineStatus:
        """What the driver reads after every step (round, leader, role, proposal slot):
        `status()` without `extra`, whose counters cost more than all the rest."""
        return self._status(NO_EXTRA)

    def _status(self, extra: Mapping[str, int | str]) -> EngineStatus:
        return EngineStatus(
            kind="pbft",
            node_id=NodeId(self.me),
            committed_height=self.committed_height,
            round=self.view,
            leader=NodeId(self.primary_of(self.view)),
            role=self._role(),
            proposal_slot=self.proposal_slot(),
            in_flight=self.log.pre_prepared_above(self.committed_height),
            extra=extra,
        )

    def undecided_blocks(self) -> tuple[Block, ...]:
        """Blocks above the committed height that may still commit here: this view's
        pre-prepares and the prepared certificates a new view re-proposes. After a restart
        the node holds their txs out of its own proposals (node/custody.py), since only the
        certificates survive it and a re-offered tx would otherwise be ordered again."""
        blocks: dict[bytes, Block] = {}
        for slot in self.log.slots():
            if slot.seq <= self.committed_height:
                continue
            certified = None if slot.certificate is None else slot.certificate.pre_prepare
            for pre_prepare in (slot.pre_prepare, certified):
                if pre_prepare is not None:
                    blocks.setdefault(pre_prepare.digest, pre_prepare.block)
        return tuple(blocks.values())

    def check_invariants(self) -> None:
        """Runs after every step (assertions stay on in production), so each part is one
        tight pass: the log's own structure (log.py), then what ties the log to the votes
        this replica signed and to its chain."""
        config = self.config
        log = self.log
        log.check_invariants()
        self.checkpoints.check_invariants(config.replica_count)
        assert log.low == self.checkpoints.stable.seq
        assert log.view == self.view  # so every pre-prepare in the log is of this view
        assert len(self.committed_hash) == HASH_BYTES
        assert self.chain_hashes.get(self.committed_height) == self.committed_hash
        assert len(self.pending) <= config.pending_pre_prepares_max
        self.future.check_invariants()
        assert len(self.chain_hashes) <= 2 * config.watermark_window_seqs + 2
        assert len(self.executed) <= 2 * config.watermark_window_seqs + config.pipeline_depth + 2
        assert len(self.votes) <= len(durable.VOTE_KINDS) * config.watermark_window_seqs
        committed_height = self.committed_height
        chain_hashes = self.chain_hashes
        digests: dict[int, bytes] = {}  # seq -> the digest pre-prepared there in this view
        for slot in log.slots():
            digest = slot.digest
            if digest is None:
                continue
            seq = slot.seq
            digests[seq] = digest
            if seq <= committed_height and slot.prepared:
                known = chain_hashes.get(seq)
                assert known is None or known == digest, "prepared against our chain"
        for (_kind, seq), voted in self.votes.items():
            digest = digests.get(seq)
            assert digest is None or digest == voted, "two digests voted in one view"
        self.views.check_invariants()
        self.recovery.check_invariants()

    # --- helpers shared with view_changes.py -------------------------------------------------

    def primary_of(self, view: int) -> int:
        return self.config.primary_of(view)

    @property
    def is_primary(self) -> bool:
        return self.primary_of(self.view) == self.me

    def broadcast(self, message: m.PbftMessage, out: Outbox) -> None:
        out.send.append(Envelope(to=None, message=message))

    def send_to(self, replica: int, message: m.PbftMessage, out: Outbox) -> None:
        out.send.append(Envelope(to=NodeId(replica), message=message))

    def ignored(self, message: object, reason: str, *, counter: str = "ignored") -> None:
        """Protocol noise is logged at debug; a peer breaking the protocol at warning."""
        self.counters[counter] += 1
        level = logging.WARNING if counter in PEER_FAULT_COUNTERS else logging.DEBUG
        log.log(
            level,
            "node=%d view=%d ignore %s from %s: %s",
            self.me,
            self.view,
            type(message).__name__,
            getattr(message, "replica", "?"),
            reason,
        )

    def hash_at(self, seq: int) -> bytes | None:
        """The block digest this replica links seq + 1 to: pre-prepared in this view,
        committed, the stable checkpoint, or (after a restart) our persisted pre-prepare."""
        if seq == 0:
            return ZERO_HASH
        slot = self.log.get(seq)
        if slot is not None and slot.pre_prepare is not None:
            return slot.digest
        if seq in self.chain_hashes:
            return self.chain_hashes[seq]
        if seq == self.checkpoints.stable.seq:
            return self.checkpoints.stable.block_hash
        return self.votes.get((durable.VOTE_PRE_PREPARE, seq))

    def enter_view(self, view: int, *, active: bool, out: Outbox) -> None:
        """Move to `view`: per-view votes go, prepared certificates stay (§4.4)."""
        assert view > self.view or (view == self.view and active and not self.active)
        if view != self.view:
            self.log.enter_view(view)
            self.votes.clear()
            self.pending.clear()
        self.view, self.active = view, active
        self.timer_deadline = None
        out.persist.append(durable.view_record(view, active=active))
        self.replay_wanted = True
        log.info("node=%d view=%d %s", self.me, view, "active" if active else "view change")

    def advance(self, out: Outbox) -> None:
        """Send PREPARE / COMMIT where the rules allow, then commit in order (voting.py)."""
        self.voting.advance(out)

    # --- events -------------------------------------------------------------------------------

    def _on_tick(self, out: Outbox) -> None:
        self.now += 1
        if request := self.catchup.on_tick(committed_height=self.committed_height, now=self.now):
            out.fetch.append(request)
        self.recovery.on_tick(out)
        self.views.on_tick(out)

    def on_message(self, sender: NodeId, message: object, out: Outbox) -> None:
        if not isinstance(
            message, m.PrePrepare | m.Prepare | m.Commit | m.Checkpoint | m.ViewChange | m.NewView
        ):
            self.ignored(message, "not a PBFT message", counter="rejected")
            return
        if message.replica != sender or message.replica == self.me:
            self.ignored(message, "sender does not match signer", counter="rejected")
            return
        if isinstance(message, m.Commit):
            self.recovery.note_commit_claim(message)
        if isinstance(message, m.ViewChange):
            self.views.on_view_change(message, out)
        elif isinstance(message, m.NewView):
            self.views.on_new_view(message, out)
        elif isinstance(message, m.Checkpoint):
            self.checkpointing.on_checkpoint(message, out)
        elif self._is_future(message):
            self._defer(message)
            if message.view > self.view:
                self.views.on_future_message(message, out)
        elif isinstance(message, m.PrePrepare):
            self._on_pre_prepare(message, out)
        else:
            self._on_vote(message, out)

    def _is_future(self, message: m.PrePrepare | m.Prepare | m.Commit) -> bool:
        if message.view > self.view or (message.view == self.view and not self.active):
            return True
        return message.view == self.view and message.seq > self.log.high

    def _defer(self, message: m.PbftMessage) -> None:
        if self.future.add(message):
            self.counters["future_dropped"] += 1
        self.counters["future_buffered"] += 1

    def _replay_future(self, out: Outbox) -> None:
        for message in self.future.drain():
            self.on_message(NodeId(message.replica), message, out)

    # --- §4.2 normal case ------------------------------------------------------------------

    def _on_propose(self, block: Block, out: Outbox) -> None:
        if not self.is_primary:
            self._note_request(block)
            return
        if (reason := self._ignore_propose(block)) is not None:
            self.ignored(block, reason, counter="proposals_refused")
            return
        pre_prepare = m.make_pre_prepare(
            self.key,
            chain_id=self.config.chain_id,
            view=self.view,
            seq=block.height,
            block=block,
            replica=self.me,
        )
        self.record_vote(durable.VOTE_PRE_PREPARE, pre_prepare.seq, pre_prepare.digest, out)
        slot = self.log.slot(pre_prepare.seq)
        slot.pre_prepare = pre_prepare
        slot.prepare_sent = True  # the primary's pre-prepare stands for its prepare
        self.next_seq = pre_prepare.seq + 1
        self.broadcast(pre_prepare, out)
        log.debug("node=%d view=%d seq=%d pre-prepare", self.me, self.view, pre_prepare.seq)
        self.advance(out)

    def _note_request(self, block: Block) -> None:
        """A backup's node holds txs waiting: expect them ordered, or suspect the primary."""
        if not (self.active and self.config.backups_offer_slots):
            return
        if self.request_height is None or self.request_height <= self.committed_height:
            self.request_height = block.height

    def _ignore_propose(self, block: Block) -> str | None:
        slot = self.proposal_slot()
        if slot is None:
            return "no proposal slot is offered"
        if (block.height, block.header.prev_hash) != (slot.height, slot.prev_hash):
            return f"block {block.height} is not for the offered slot {slot.height}"
        return self._block_invalid(block, seq=block.height)

    def proposal_slot(self) -> ProposalSlot | None:
        if not self.active:
            return None
        if not self.is_primary:
            if not self.config.backups_offer_slots:
                return None
            seq, prev_hash = self.committed_height + 1, self.committed_hash
        else:
            seq = self.next_seq
            maybe_prev = self.hash_at(seq - 1)
            if maybe_prev is None or not self.log.in_window(seq):
                return None
            prev_hash = maybe_prev
        if seq - self.config.pipeline_depth > self.executed_height:
            return None
        return ProposalSlot(height=seq, prev_hash=prev_hash)

    def _on_pre_prepare(self, pre_prepare: m.PrePrepare, out: Outbox) -> None:
        if pre_prepare.view < self.view:
            self.ignored(pre_prepare, "stale view")
            return
        slot = self.log.get(pre_prepare.seq)
        if slot is not None and slot.pre_prepare is not None:
            if slot.digest != pre_prepare.digest:
                self.views.on_equivocation(slot.pre_prepare, pre_prepare, out)
            else:
                self.ignored(pre_prepare, "duplicate pre-prepare", counter="duplicates")
            return
        reason = self._ignore_pre_prepare(pre_prepare)
        if reason == WAIT_FOR_EXECUTION:
            self._wait_for_execution(pre_prepare)
            return
        if reason is not None:
            self.ignored(pre_prepare, reason, counter="pre_prepares_rejected")
            return
        self.log.slot(pre_prepare.seq).pre_prepare = pre_prepare
        self.advance(out)

    def _ignore_pre_prepare(self, pre_prepare: m.PrePrepare) -> str | None:
        if pre_prepare.view < self.view:
            return "stale view"
        if pre_prepare.replica != self.primary_of(self.view):
            return "not from the primary"
        if pre_prepare.seq <= self.log.low:
            return "below the low watermark"
        voted = self.votes.get((durable.VOTE_PREPARE, pre_prepare.seq))
        if voted is not None and voted != pre_prepare.digest:
            return "conflicts with the PREPARE this replica already signed"
        return self._block_invalid(pre_prepare.block, seq=pre_prepare.seq)

    def _block_invalid(self, block: Block, *, seq: int) -> str | None:
        return block_invalid(
            block,
            seq=seq,
            config=self.config,
            primary=self.primary_of(self.view),
            validators_hash=self.validators_hash,
            executed=self.executed,
            executed_height=self.executed_height,
        )

    def _wait_for_execution(self, pre_prepare: m.PrePrepare) -> None:
        if pre_prepare.seq in self.pending:
            return
        if len(self.pending) >= self.config.pending_pre_prepares_max:
            self.ignored(pre_prepare, "too many pre-prepares wait", counter="pending_dropped")
            return
        self.pending[pre_prepare.seq] = pre_prepare

    def _on_vote(self, vote: m.Prepare | m.Commit, out: Outbox) -> None:
        if (reason := self._ignore_vote(vote)) is not None:
            self.ignored(vote, reason)
            return
        slot = self.log.slot(vote.seq)
        if vote.replica in (slot.prepares if isinstance(vote, m.Prepare) else slot.commits):
            self.ignored(vote, "second vote from one replica", counter="duplicates")
            return
        if isinstance(vote, m.Prepare):
            slot.prepares[vote.replica] = vote
        else:
            slot.commits[vote.replica] = vote
        self.advance(out)

    def _ignore_vote(self, vote: m.Prepare | m.Commit) -> str | None:
        if vote.view < self.view:
            return "stale view"
        if not self.log.in_window(vote.seq):
            return "seq outside the watermarks"
        # Votes for seqs we already committed still count: after a view change the
        # replicas behind us need our COMMIT for them in the new view (§4.4, O).
        return None

    def record_vote(self, kind: int, seq: int, digest: bytes, out: Outbox) -> None:
        """Record a vote durably before the message that carries it is sent."""
        assert self.votes.get((kind, seq), digest) == digest, "conflicting vote"
        self.votes[(kind, seq)] = digest
        out.persist.append(durable.vote_record(kind, seq=seq, view=self.view, digest=digest))

    def record_commit(self, sealed: SealedBlock, out: Outbox) -> None:
        assert sealed.height == self.committed_height + 1, "commits are consecutive"
        assert sealed.block.header.prev_hash == self.committed_hash, "commits link"
        out.commit.append(sealed)
        self.committed_height = sealed.height
        self.committed_hash = sealed.block.hash()
        self.chain_hashes[sealed.height] = self.committed_hash
        self.checkpointing.trim_chain_hashes()
        if self.active:
            self.timer_deadline = None  # progress: restart the timer if work remains (§4.4)
            self.views.on_progress()
        log.debug("node=%d view=%d seq=%d committed", self.me, self.view, sealed.height)

    def _retry_pending(self, out: Outbox) -> None:
        """Pre-prepares that waited for the execution of seq - P get another look."""
        for seq in sorted(self.pending):
            if seq - self.config.pipeline_depth <= self.executed_height:
                self._on_pre_prepare(self.pending.pop(seq), out)

    def _initial_next_seq(self) -> int:
        proposed = [seq for (kind, seq) in self.votes if kind == durable.VOTE_PRE_PREPARE]
        return max([self.committed_height, self.log.low, *proposed]) + 1

    def _role(self) -> str:
        if not self.active:
            return "view-change"
        return "primary" if self.is_primary else "backup"
