"""View changes (PBFT §4.4, §4.5.2): timers, VIEW-CHANGE, NEW-VIEW, equivocation.

    timer      an active replica with pending work (a pre-prepare it holds for an uncommitted
               seq, one waiting for execution, or txs its node reported via a backup slot)
               starts a timer; a commit restarts it. On expiry it moves to view + 1.
    VIEW-CHANGE carries the stable checkpoint with its proof and the prepared certificates
               above it (the log keeps the highest-view one per seq, across views).
    escalation in a view change, the timer for moving on to view + 2 starts only once a
               quorum of replicas sent VIEW-CHANGEs for the target or a later view
               (§4.5.2 rule 1); it doubles
               with every view change in a row without a commit (exponential backoff).
    joining    f + 1 VIEW-CHANGEs for views above ours make us join the smallest (rule 2),
               so f faulty replicas cannot force a view change but cannot strand us either.
    NEW-VIEW   the new primary builds it from a quorum of VIEW-CHANGEs (view_change.py);
               backups recompute O and reject a NEW-VIEW whose O differs.

Memory: one VIEW-CHANGE per replica (its newest), so at most n of them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consensus.outbox import Outbox
from consensus.pbft import durable
from consensus.pbft import messages as m
from consensus.pbft.checkpoint import StableCheckpoint
from consensus.pbft.view_change import NewViewPlan, plan_new_view

if TYPE_CHECKING:
    from consensus.pbft.engine import PbftEngine

log = logging.getLogger(__name__)

BACKOFF_SHIFT_MAX = 16


class ViewChanges:
    def __init__(self, engine: PbftEngine) -> None:
        self.engine = engine
        self.received: dict[int, m.ViewChange] = {}  # replica -> its newest VIEW-CHANGE
        self.attempts = 0  # view changes in a row without a commit: the backoff exponent
        self.new_view: m.NewView | None = None  # what started our current view, if any
        self.own: m.ViewChange | None = None
        self.seen_views: dict[int, int] = {}  # replica -> highest view of its normal messages

    # --- timers -------------------------------------------------------------------------------

    def timeout_ticks(self) -> int:
        config = self.engine.config
        shift = min(self.attempts, BACKOFF_SHIFT_MAX)
        return min(config.view_change_timeout_ticks << shift, config.view_change_timeout_ticks_max)

    def on_tick(self, out: Outbox) -> None:
        engine = self.engine
        if engine.active and not self._pending_work():
            engine.timer_deadline = None
            return
        if engine.active and engine.timer_deadline is None:
            engine.timer_deadline = engine.now + self.timeout_ticks()
            return
        self._arm_escalation()
        if engine.timer_deadline is not None and engine.now >= engine.timer_deadline:
            log.info("node=%d view=%d timer expired", engine.me, engine.view)
            self.start(engine.view + 1, out)

    def _pending_work(self) -> bool:
        engine = self.engine
        if engine.pending:
            return True
        if engine.request_height is not None and engine.request_height > engine.committed_height:
            return True
        return engine.log.pre_prepared_above(engine.committed_height) > 0

    def on_progress(self) -> None:
        self.attempts = 0

    def _arm_escalation(self) -> None:
        engine = self.engine
        if engine.active or engine.timer_deadline is not None:
            return
        # Replicas already asking for a later view are in the view change too; counting
        # only our target could leave a quorum split over two views with no timer running.
        count = sum(1 for vc in self.received.values() if vc.new_view >= engine.view)
        if count >= engine.config.quorum:
            engine.timer_deadline = engine.now + self.timeout_ticks()

    # --- VIEW-CHANGE --------------------------------------------------------------------------

    def start(self, target: int, out: Outbox) -> None:
        """_enter_view(target) as a view change: send VIEW-CHANGE, stop normal operation."""
        engine = self.engine
        assert target > engine.view
        engine.enter_view(target, active=False, out=out)
        self.attempts += 1
        self.new_view = None
        engine.counters["view_changes"] += 1
        self.received = {r: vc for r, vc in self.received.items() if vc.new_view >= target}
        self.own = self._make_own()
        self.received[engine.me] = self.own
        engine.broadcast(self.own, out)
        self._arm_escalation()
        self._try_new_view(out)

    def _make_own(self) -> m.ViewChange:
        engine = self.engine
        stable = engine.checkpoints.stable
        return m.make_view_change(
            engine.key,
            chain_id=engine.config.chain_id,
            new_view=engine.view,
            checkpoint=stable.triple,
            checkpoint_proof=stable.proof,
            prepared=engine.log.certificates(),
            replica=engine.me,
        )

    def retransmit(self, out: Outbox) -> None:
        engine = self.engine
        assert not engine.active
        if self.own is None or self.own.new_view != engine.view:
            self.own = self._make_own()  # after a restart in the middle of a view change
            self.received[engine.me] = self.own
        engine.broadcast(self.own, out)

    def on_view_change(self, view_change: m.ViewChange, out: Outbox) -> None:
        engine = self.engine
        if (reason := self._ignore_view_change(view_change, out)) is not None:
            engine.ignored(view_change, reason)
            return
        self.received[view_change.replica] = view_change
        higher = sorted(
            vc.new_view
            for replica, vc in self.received.items()
            if replica != engine.me and vc.new_view > engine.view
        )
        if len(higher) >= engine.config.weak_quorum:
            self.start(higher[0], out)  # §4.5.2: f + 1 replicas moved on; join the smallest
        self._try_new_view(out)
        self._arm_escalation()

    def _ignore_view_change(self, view_change: m.ViewChange, out: Outbox) -> str | None:
        engine = self.engine
        target = view_change.new_view
        if target < engine.view or (target == engine.view and engine.active):
            if target == engine.view and engine.is_primary and self.new_view is not None:
                engine.send_to(view_change.replica, self.new_view, out)
                return "already in that view: re-sent our NEW-VIEW"
            return "stale view change"
        previous = self.received.get(view_change.replica)
        if previous is not None and previous.new_view >= target:
            return "not newer than this replica's last view change"
        return None

    def on_future_message(self, message: m.PrePrepare | m.Prepare | m.Commit, out: Outbox) -> None:
        """Normal-case messages of later views from f + 1 replicas mean at least one honest
        replica is there: join the view change for the highest view f + 1 of them reached,
        so a replica that missed a NEW-VIEW asks for it (its primary re-sends it) instead
        of sitting in an old view until its own timer fires."""
        engine = self.engine
        if message.view <= self.seen_views.get(message.replica, -1):
            return
        self.seen_views[message.replica] = message.view
        views = sorted(self.seen_views.values(), reverse=True)
        weak = engine.config.weak_quorum
        if len(views) >= weak and views[weak - 1] > engine.view:
            self.start(views[weak - 1], out)

    # --- NEW-VIEW -----------------------------------------------------------------------------

    def _try_new_view(self, out: Outbox) -> None:
        engine = self.engine
        if engine.active or not engine.is_primary:
            return
        view_changes = tuple(
            vc for _, vc in sorted(self.received.items()) if vc.new_view == engine.view
        )
        if len(view_changes) < engine.config.quorum:
            return
        plan = plan_new_view(view_changes, view=engine.view, quorum=engine.config.quorum)
        if isinstance(plan, str):
            engine.counters["new_view_unplannable"] += 1
            log.warning("node=%d view=%d cannot build NEW-VIEW: %s", engine.me, engine.view, plan)
            return
        pre_prepares = tuple(
            m.make_pre_prepare(
                engine.key,
                chain_id=engine.config.chain_id,
                view=engine.view,
                seq=block.height,
                block=block,
                replica=engine.me,
            )
            for block in plan.blocks
        )
        new_view = m.make_new_view(
            engine.key,
            chain_id=engine.config.chain_id,
            view=engine.view,
            view_changes=view_changes,
            pre_prepares=pre_prepares,
            replica=engine.me,
        )
        self._install(plan, new_view, out)
        engine.broadcast(new_view, out)

    def on_new_view(self, new_view: m.NewView, out: Outbox) -> None:
        engine = self.engine
        if (reason := self._ignore_new_view(new_view)) is not None:
            engine.ignored(new_view, reason)
            return
        plan = plan_new_view(new_view.view_changes, view=new_view.view, quorum=engine.config.quorum)
        if isinstance(plan, str):
            engine.ignored(new_view, plan, counter="malformed_new_view")
            return
        offered = tuple((pp.seq, pp.digest) for pp in new_view.pre_prepares)
        if offered != plan.digests:
            engine.ignored(
                new_view, "O differs from the one V implies", counter="malformed_new_view"
            )
            return
        self._install(plan, new_view, out)

    def _ignore_new_view(self, new_view: m.NewView) -> str | None:
        engine = self.engine
        if new_view.view < engine.view:
            return "stale new-view"
        if new_view.view == engine.view and engine.active:
            return "already active in this view"
        if new_view.replica != engine.primary_of(new_view.view):
            return "new-view not from the view's primary"
        return None

    def _install(self, plan: NewViewPlan, new_view: m.NewView, out: Outbox) -> None:
        """Start the view: adopt V's checkpoint, accept O as this view's pre-prepares."""
        engine = self.engine
        engine.enter_view(plan.view, active=True, out=out)
        self.new_view = new_view
        self.received = {r: vc for r, vc in self.received.items() if vc.new_view > engine.view}
        if plan.checkpoint_seq > engine.log.low:
            stable = StableCheckpoint(
                seq=plan.checkpoint_seq,
                block_hash=plan.checkpoint_block_hash,
                app_hash=plan.checkpoint_app_hash,
                proof=plan.checkpoint_proof,
            )
            engine.checkpointing.adopt_stable(stable, out)
        for pre_prepare in new_view.pre_prepares:
            if pre_prepare.seq <= engine.log.low:
                continue
            if pre_prepare.seq <= engine.committed_height:
                known = engine.chain_hashes.get(pre_prepare.seq, pre_prepare.digest)
                assert known == pre_prepare.digest, "NEW-VIEW re-proposes over a committed block"
            slot = engine.log.slot(pre_prepare.seq)
            slot.pre_prepare = pre_prepare
            if engine.is_primary:
                engine.record_vote(
                    durable.VOTE_PRE_PREPARE, pre_prepare.seq, pre_prepare.digest, out
                )
                slot.prepare_sent = True
        engine.next_seq = max(engine.committed_height, plan.max_seq, engine.log.low) + 1
        engine.counters["new_views"] += 1
        log.info(
            "node=%d view=%d new view: min-s=%d max-s=%d",
            engine.me,
            engine.view,
            plan.checkpoint_seq,
            plan.max_seq,
        )
        engine.advance(out)

    # --- byzantine primary --------------------------------------------------------------------

    def on_equivocation(self, first: m.PrePrepare, second: m.PrePrepare, out: Outbox) -> None:
        """Two signed pre-prepares for one (view, seq): keep both as evidence, change view."""
        engine = self.engine
        engine.evidence.append((first, second))
        engine.counters["equivocations"] += 1
        log.warning(
            "node=%d view=%d seq=%d primary %d equivocated",
            engine.me,
            first.view,
            first.seq,
            first.replica,
        )
        if engine.active and first.view == engine.view:
            self.start(engine.view + 1, out)

    def check_invariants(self) -> None:
        engine = self.engine
        assert len(self.received) <= engine.config.replica_count
        assert len(self.seen_views) <= engine.config.replica_count
        if self.received:  # runs after every engine step; empty outside view changes
            assert min(vc.new_view for vc in self.received.values()) >= engine.view
        if not engine.active and self.own is not None:
            assert self.own.new_view <= engine.view
