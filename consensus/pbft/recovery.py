"""Getting unstuck: retransmission and catch-up glue for the engine.

Messages get lost; replicas fall behind. Two mechanisms, both driven by the engine's ticks:

    retransmit   once `retransmit_ticks` pass without progress (a commit or a view move),
                 a replica re-sends its own votes of the current view (the primary its
                 pre-prepares) for uncommitted seqs, and its COMMITs for committed ones,
                 since a replica that lost them may be the one the quorum waits for; in a
                 view change, its VIEW-CHANGE; and its latest CHECKPOINT, which tells a
                 laggard where the stable checkpoint is. The interval doubles (capped)
                 while nothing changes, so an idle cluster stays quiet.
    catch-up     evidence that others committed above us (a stable checkpoint, a NEW-VIEW's
                 min-s, a quorum of COMMITs for a seq past a gap in our log, COMMITs from
                 f + 1 replicas of any view while we are stalled) turns into a FetchRequest
                 (catchup.py); fetched blocks commit only if every seal verifies.

Memory: one commit claim (highest seq) per replica.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from consensus.outbox import Outbox
from consensus.pbft import messages as m
from consensus.pbft.catchup import verify_fetched
from consensus.types import Fetched

if TYPE_CHECKING:
    from consensus.pbft.engine import PbftEngine

log = logging.getLogger(__name__)

RETRANSMIT_BACKOFF_MAX = 6  # at most every retransmit_ticks * 64 while nothing changes


class Recovery:
    def __init__(self, engine: PbftEngine) -> None:
        self.engine = engine
        self.commit_claims: dict[int, int] = {}  # replica -> highest seq it sent COMMIT for
        self.last_progress = (engine.committed_height, engine.view, engine.active)
        self.next_at = 0
        self.backoff = 0

    def want_blocks(self, target: int, out: Outbox) -> None:
        engine = self.engine
        if target <= engine.committed_height:
            return
        request = engine.catchup.want(
            target, committed_height=engine.committed_height, now=engine.now
        )
        if request is not None:
            out.fetch.append(request)

    def on_fetched(self, event: Fetched, out: Outbox) -> None:
        engine = self.engine
        verified = verify_fetched(
            event.blocks,
            chain_id=engine.config.chain_id,
            validators=engine.config.validators,
            committed_height=engine.committed_height,
            committed_hash=engine.committed_hash,
        )
        for sealed in verified.accepted:
            engine.record_commit(sealed, out)
        if verified.rejected is not None:
            engine.counters["fetched_rejected"] += 1
            log.warning(
                "node=%d fetched blocks from peer %d rejected: %s",
                engine.me,
                event.sender,
                verified.rejected,
            )
        engine.counters["fetched_blocks"] += len(verified.accepted)
        request = engine.catchup.on_answer(
            sender=event.sender,
            rejected=verified.rejected is not None,
            committed_height=engine.committed_height,
            now=engine.now,
        )
        if request is not None:
            out.fetch.append(request)
        engine.advance(out)

    def on_tick(self, out: Outbox) -> None:
        """Retransmit after `retransmit_ticks` without progress, then at doubling intervals
        (capped), so an idle or partitioned cluster does not flood; progress resets it."""
        engine = self.engine
        progress = (engine.committed_height, engine.view, engine.active)
        if progress != self.last_progress:
            self.last_progress = progress
            self.backoff = 0
            self.next_at = engine.now + engine.config.retransmit_ticks
            return
        if engine.now < self.next_at:
            return
        self.backoff = min(self.backoff + 1, RETRANSMIT_BACKOFF_MAX)
        self.next_at = engine.now + (engine.config.retransmit_ticks << self.backoff)
        self._retransmit(out)

    def _retransmit(self, out: Outbox) -> None:
        engine = self.engine
        own_checkpoint = engine.checkpointing.own_checkpoint
        if own_checkpoint is not None and own_checkpoint.seq >= engine.log.low:
            engine.broadcast(own_checkpoint, out)
        self._fetch_claimed(out)
        if not engine.active:
            engine.views.retransmit(out)
            return
        for slot in engine.log.slots():
            if slot.pre_prepare is None:
                continue
            committed = slot.seq <= engine.committed_height
            if engine.is_primary and not committed:
                engine.broadcast(slot.pre_prepare, out)
            if not committed and (prepare := slot.prepares.get(engine.me)) is not None:
                engine.broadcast(prepare, out)
            if (commit := slot.commits.get(engine.me)) is not None:
                engine.broadcast(commit, out)
        self._fetch_beyond_gap(out)

    def _fetch_beyond_gap(self, out: Outbox) -> None:
        """A quorum of COMMITs for a seq we cannot reach from the log: fetch up to it."""
        engine = self.engine
        for slot in reversed(engine.log.slots()):
            if slot.seq <= engine.committed_height + 1:
                return
            by_digest = Counter(commit.digest for commit in slot.commits.values())
            if by_digest and max(by_digest.values()) >= engine.config.quorum:
                self.want_blocks(slot.seq, out)
                return

    def note_commit_claim(self, commit: m.Commit) -> None:
        """COMMITs of any view, even stale ones, show how far the others got."""
        if commit.seq > self.commit_claims.get(commit.replica, 0):
            self.commit_claims[commit.replica] = commit.seq

    def _fetch_claimed(self, out: Outbox) -> None:
        """Stalled while f + 1 replicas (so at least one honest) sent COMMITs above our
        height: fetch up to there. A replica left behind by an equivocating primary or a
        lost NEW-VIEW catches up by blocks and seals instead of waiting for a checkpoint."""
        engine = self.engine
        claims = sorted(self.commit_claims.values(), reverse=True)
        weak = engine.config.weak_quorum
        if len(claims) >= weak and claims[weak - 1] > engine.committed_height:
            self.want_blocks(claims[weak - 1], out)

    def check_invariants(self) -> None:
        engine = self.engine
        assert len(self.commit_claims) <= engine.config.replica_count
        assert 0 <= self.backoff <= RETRANSMIT_BACKOFF_MAX
