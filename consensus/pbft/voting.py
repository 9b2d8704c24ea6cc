"""The PBFT normal case after the pre-prepare (§4.2): PREPARE, COMMIT, commit in order.

Why a module of its own: engine.py decides which messages enter the log (pre-prepares,
votes, views); this decides, from what the log holds, when this replica may vote and when a
height commits. It owns no state: it reads and writes the engine's log, votes and chain
through the back-reference, like checkpointing.py and view_changes.py. The engine calls
`advance` after anything that may let a slot move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.outbox import Outbox
from consensus.pbft import durable
from consensus.pbft import messages as m
from consensus.pbft.log import Slot
from protocol.crypto import ZERO_HASH
from protocol.seal import SEAL_QUORUM, Seal
from protocol.sealed import SealedBlock

if TYPE_CHECKING:
    from consensus.pbft.engine import PbftEngine


class Voting:
    def __init__(self, engine: PbftEngine) -> None:
        self.engine = engine

    def advance(self, out: Outbox) -> None:
        """Send PREPARE / COMMIT where the rules allow, in seq order, then commit in order."""
        for slot in self.engine.log.slots():
            if slot.pre_prepare is None:
                continue
            if not slot.prepare_sent and self._linked(slot):
                self._send_prepare(slot, out)
            if slot.prepare_sent and not slot.prepared and self._prepared(slot):
                self._mark_prepared(slot, out)
            if slot.prepared and not slot.commit_sent:
                self._send_commit(slot, out)
        self._commit_in_order(out)

    def _linked(self, slot: Slot) -> bool:
        """The chain-link prepare rule: seq - 1 committed with hash prev_hash, or prepared
        in this view with digest prev_hash (docs/PBFT.md, "The chain link")."""
        assert slot.pre_prepare is not None
        prev_hash = slot.pre_prepare.block.header.prev_hash
        previous = slot.seq - 1
        if previous == 0:
            return prev_hash == ZERO_HASH
        if previous <= self.engine.committed_height and previous in self.engine.chain_hashes:
            return self.engine.chain_hashes[previous] == prev_hash
        if previous == self.engine.log.low:
            return self.engine.checkpoints.stable.block_hash == prev_hash
        before = self.engine.log.get(previous)
        return before is not None and before.prepared and before.digest == prev_hash

    def _prepared(self, slot: Slot) -> bool:
        """prepared(m, v, n), §4.2: the pre-prepare plus quorum - 1 matching PREPAREs."""
        return self._linked(slot) and len(slot.matching_prepares()) >= self.engine.config.quorum - 1

    def _send_prepare(self, slot: Slot, out: Outbox) -> None:
        assert slot.pre_prepare is not None
        assert slot.digest is not None
        slot.prepare_sent = True
        if self.engine.is_primary:
            return
        prepare = m.make_prepare(
            self.engine.key,
            chain_id=self.engine.config.chain_id,
            view=self.engine.view,
            seq=slot.seq,
            digest=slot.digest,
            replica=self.engine.me,
        )
        self.engine.record_vote(durable.VOTE_PREPARE, slot.seq, slot.digest, out)
        slot.prepares[self.engine.me] = prepare
        self.engine.broadcast(prepare, out)

    def _mark_prepared(self, slot: Slot, out: Outbox) -> None:
        assert slot.pre_prepare is not None
        slot.prepared = True
        certificate = m.PreparedCertificate(
            pre_prepare=slot.pre_prepare, prepares=tuple(slot.matching_prepares())
        )
        slot.certificate = certificate
        out.persist.append(durable.certificate_record(certificate))

    def _send_commit(self, slot: Slot, out: Outbox) -> None:
        assert slot.digest is not None
        commit = m.make_commit(
            self.engine.key,
            chain_id=self.engine.config.chain_id,
            view=self.engine.view,
            seq=slot.seq,
            digest=slot.digest,
            replica=self.engine.me,
        )
        self.engine.record_vote(durable.VOTE_COMMIT, slot.seq, slot.digest, out)
        slot.commit_sent = True
        slot.commits[self.engine.me] = commit
        self.engine.broadcast(commit, out)

    def _commit_in_order(self, out: Outbox) -> None:
        while (slot := self.engine.log.get(self.engine.committed_height + 1)) is not None:
            commits = slot.matching_commits()
            if not slot.prepared or len(commits) < self.engine.config.quorum:
                return
            assert slot.pre_prepare is not None
            assert slot.digest is not None
            seal = Seal(
                kind=SEAL_QUORUM,
                round=self.engine.view,
                height=slot.seq,
                block_hash=slot.digest,
                signatures=tuple((commit.replica, commit.signature) for commit in commits),
            )
            self.engine.record_commit(SealedBlock(block=slot.pre_prepare.block, seal=seal), out)
