"""Tx custody across leaders: no tx ordered twice, none silently dropped.

Why a module of its own: a tx passes through several hands between its client and its
block: this node's own proposal, another validator's proposal it carries (PRE-PREPARE,
AppendEntries), the leader it is re-offered to. Each hand-over needs bookkeeping that is
not the Node's orchestration: txs in a block someone else proposed are held out of our own
proposals until that height commits (else a new primary or leader orders them a second
time), proposals and held blocks that lost their height give their txs back, and txs that
waited a whole interval go to the leader again. `Node` owns one `TxCustody` and calls it
from the commit listener, the engine step and its background tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from consensus.types import EngineStatus
from node import limits
from node.carried import CarriedTxs
from node.mempool import Mempool
from node.network import NodeNetwork
from node.standby import StandbyKeeper, StandbyStore
from protocol.block import Block

log = logging.getLogger(__name__)


class TxCustody:
    """Heights we proposed or carried a block for, and what to give back when they lose."""

    def __init__(
        self,
        *,
        mempool: Mempool,
        standby: StandbyStore,
        standby_keeper: StandbyKeeper,
        carried: CarriedTxs,
        committed_height: Callable[[], int],
    ) -> None:
        self._mempool = mempool
        self._standby = standby
        self._standby_keeper = standby_keeper
        self._carried = carried  # the pool and standby read it too (node/carried.py)
        self._committed_height = committed_height
        self._proposed: dict[int, tuple[float, tuple[bytes, ...]]] = {}  # height -> (t, txs)

    def note_proposed(self, height: int, at: float, tx_hashes: tuple[bytes, ...]) -> None:
        """Our own proposal at `height`, made at monotonic time `at`."""
        self._proposed[height] = (at, tx_hashes)

    def proposed_at(self, height: int) -> float | None:
        """When we proposed the block at `height`, if it is still tracked (commit latency)."""
        proposed = self._proposed.get(height)
        return None if proposed is None else proposed[0]

    def hold_carried_txs(self, block: Block) -> None:
        """Txs in a block another validator proposed stay out of our own proposals until
        that height commits, so a new primary or leader does not order them a second time.
        The hold is by hash: a copy that reaches the pool or standby later enters held."""
        committed = self._committed_height()
        if not committed < block.height <= committed + limits.held_heights_ahead_max:
            return  # already decided, or too far ahead to be honest work (bounded memory)
        recorded = self._carried.carry(block.height, block.tx_hashes())
        if recorded:
            self._mempool.hold(recorded)
            self._standby.hold(recorded)

    def release_abandoned_proposals(self, height: int, committed: set[bytes]) -> None:
        """Our proposals, and blocks we held txs for, at or below a committed height that
        did not commit (another block won the height) give their txs back to the pool."""
        decided_proposals = [
            self._proposed.pop(h)[1] for h in sorted(self._proposed) if h <= height
        ]
        uncarried = self._carried.decide(height)
        lost_proposed = [h for hashes in decided_proposals for h in hashes if h not in committed]
        lost_held = [h for h in uncarried if h not in committed]
        if not lost_proposed and not lost_held:
            return  # the usual case: the block we proposed or carried is the one that won
        # A tx may sit in blocks at several heights (competing proposals after a view change
        # or a new term): it stays out of our proposals while any undecided one carries it.
        proposed = self._undecided_proposals()
        carried = self._carried
        returned = [h for h in lost_proposed if h not in proposed and h not in carried]
        if returned:
            self._mempool.return_txs(returned)
        released = [h for h in lost_held if h not in proposed]
        if released:
            self._mempool.return_txs(released)
            self._standby_keeper.released(released)

    def _undecided_proposals(self) -> set[bytes]:
        """Txs in our own proposals at heights not yet decided."""
        return {h for _, hashes in self._proposed.values() for h in hashes}

    async def reoffer_stale_txs(
        self,
        network: NodeNetwork,
        *,
        status: Callable[[], EngineStatus],
        idle_s: Callable[[], float],
    ) -> None:
        """Every interval, txs that have waited here since the previous interval go to the
        leader again (NodeNetwork.reoffer_to_leader says why). Bounded per interval."""
        mark = self._mempool.arrival_mark()
        standby_mark = self._standby.arrival_mark()
        while True:
            await asyncio.sleep(limits.reoffer_interval_s)
            if not self._standby_keeper.leading and idle_s() >= limits.reoffer_interval_s:
                admitted = await self._standby_keeper.admit_waiting(standby_mark)
                if admitted:
                    log.info("no commit for %.1f s: admitted %d standby txs", idle_s(), admitted)
            standby_mark = self._standby.arrival_mark()
            current = status()
            if current.leader is not None and current.leader != current.node_id:
                stale = self._mempool.pending_raws_before(mark, limits.reoffer_txs_max)
                if stale:
                    queued = network.reoffer_to_leader(current.leader, stale)
                    log.debug("re-offered %d waiting txs to the leader", queued)
            mark = self._mempool.arrival_mark()
