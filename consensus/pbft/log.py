"""The PBFT message log (§4.2, §4.3): one slot per sequence number inside the watermarks.

The log holds seqs in (low, low + window], where `low` is the last stable checkpoint h.
A slot keeps what this replica knows about its seq in the *current* view (the accepted
pre-prepare, PREPAREs and COMMITs by replica, whether it prepared / sent COMMIT) and, across
views, the highest-view prepared certificate, which a VIEW-CHANGE carries (§4.4).

Bounds: at most `window` slots; per slot at most one PREPARE and one COMMIT per replica in
the current view. Votes for other views are not stored here (the engine buffers future-view
messages per peer, within a bound, and drops stale ones).
"""

from __future__ import annotations

import logging
from collections import deque

from consensus.pbft.messages import (
    Commit,
    PbftMessage,
    Prepare,
    PreparedCertificate,
    PrePrepare,
)

log = logging.getLogger(__name__)


class Slot:
    """What this replica knows about one seq: per-view fields for `view`, and the prepared
    certificate, which survives views.

    `pre_prepare` is a property: setting it also sets `digest` (its block hash), which the
    voting rules and the invariant checks read several times per slot and step."""

    __slots__ = (
        "_digest",
        "_pre_prepare",
        "certificate",
        "commit_sent",
        "commits",
        "prepare_sent",
        "prepared",
        "prepares",
        "seq",
        "view",
    )

    def __init__(self, *, seq: int, view: int) -> None:
        self.seq = seq
        self.view = view  # the view the per-view fields below belong to
        self._pre_prepare: PrePrepare | None = None
        self._digest: bytes | None = None
        self.prepares: dict[int, Prepare] = {}  # replica -> its PREPARE
        self.commits: dict[int, Commit] = {}  # replica -> its COMMIT
        self.prepare_sent = False
        self.prepared = False  # prepared(m, v, n) holds locally, in seq order (see engine)
        self.commit_sent = False
        self.certificate: PreparedCertificate | None = None  # highest-view prepared certificate

    @property
    def pre_prepare(self) -> PrePrepare | None:
        return self._pre_prepare

    @pre_prepare.setter
    def pre_prepare(self, pre_prepare: PrePrepare | None) -> None:
        self._pre_prepare = pre_prepare
        self._digest = None if pre_prepare is None else pre_prepare.digest

    @property
    def digest(self) -> bytes | None:
        return self._digest

    def reset_for_view(self, view: int) -> None:
        """Forget per-view votes; the prepared certificate survives (§4.4)."""
        self.view = view
        self.pre_prepare = None
        self.prepares.clear()
        self.commits.clear()
        self.prepare_sent = False
        self.prepared = False
        self.commit_sent = False

    def matching_prepares(self) -> list[Prepare]:
        digest = self._digest
        return [p for _, p in sorted(self.prepares.items()) if p.digest == digest]

    def matching_commits(self) -> list[Commit]:
        digest = self._digest
        return [c for _, c in sorted(self.commits.items()) if c.digest == digest]


class MessageLog:
    """Slots for (low, low + window]; `advance` moves the low watermark and drops the rest.

    The slots are kept in ascending seq order (a dict in insertion order, re-sorted in the
    rare case a slot is created below the highest one), so walking them in seq order, as
    the voting rules do after every event, needs no sort, and a question about the top of
    the log (what is pre-prepared above the committed height) scans only the top."""

    def __init__(self, *, low: int, window: int, view: int) -> None:
        assert low >= 0
        assert window >= 1
        self.low = low
        self.window = window
        self._view = view
        self._slots: dict[int, Slot] = {}

    @property
    def high(self) -> int:
        return self.low + self.window

    @property
    def view(self) -> int:
        return self._view

    def in_window(self, seq: int) -> bool:
        return self.low < seq <= self.high

    def get(self, seq: int) -> Slot | None:
        return self._slots.get(seq)

    def slot(self, seq: int) -> Slot:
        """The slot for `seq`, created on first use; seq must be inside the watermarks."""
        slots = self._slots
        slot = slots.get(seq)
        if slot is None:
            assert self.in_window(seq), f"seq {seq} outside ({self.low}, {self.high}]"
            slot = Slot(seq=seq, view=self._view)
            below_top = bool(slots) and seq < next(reversed(slots))
            slots[seq] = slot
            if below_top:
                self._slots = dict(sorted(slots.items()))
        return slot

    def seqs(self) -> list[int]:
        return list(self._slots)

    def slots(self) -> list[Slot]:
        """Every slot, in seq order."""
        return list(self._slots.values())

    def __len__(self) -> int:
        return len(self._slots)

    def pre_prepared_above(self, seq: int) -> int:
        """How many slots above `seq` hold a pre-prepare (in flight above a committed
        height): a scan down from the top that stops at `seq`."""
        count = 0
        for slot in reversed(self._slots.values()):
            if slot.seq <= seq:
                break
            if slot._digest is not None:
                count += 1
        return count

    def advance(self, low: int) -> list[int]:
        """Move the low watermark to `low` (a new stable checkpoint); returns dropped seqs."""
        assert low >= self.low, "the low watermark never moves back"
        self.low = low
        dropped = [seq for seq in self._slots if seq <= low]
        for seq in dropped:
            del self._slots[seq]
        return dropped

    def enter_view(self, view: int) -> None:
        """A new view: every slot forgets its per-view votes, keeps its certificate."""
        self._view = view
        for slot in self._slots.values():
            slot.reset_for_view(view)

    def certificates(self) -> tuple[PreparedCertificate, ...]:
        """The set P of a VIEW-CHANGE (§4.4): highest-view certificate per seq, in seq order."""
        return tuple(slot.certificate for slot in self.slots() if slot.certificate is not None)

    def check_invariants(self) -> None:
        """Runs after every engine step, so it is one tight pass over the slots."""
        slots = self._slots
        assert len(slots) <= self.window
        view = self._view
        previous = self.low  # every seq in (low, high], ascending
        high = self.low + self.window
        for seq, slot in slots.items():
            assert previous < seq <= high, f"seq {seq} out of order or outside the window"
            assert slot.seq == seq
            assert slot.view == view
            previous = seq
            pre_prepare = slot._pre_prepare
            if pre_prepare is None:
                assert slot._digest is None
                assert not slot.prepared
                assert not slot.commit_sent
            else:
                assert pre_prepare.view == view
                assert not slot.commit_sent or slot.prepared
            certificate = slot.certificate
            if certificate is not None:
                assert certificate.seq == seq
                assert certificate.view <= view


class FutureBuffer:
    """Messages for a later view or above the high watermark, kept until they may apply
    (Fabric #1119: the primary may move its watermarks before a backup does). At most
    `per_peer_max` per sender; when full, the oldest goes (and is counted by the caller)."""

    def __init__(self, *, per_peer_max: int) -> None:
        assert per_peer_max >= 1
        self._per_peer_max = per_peer_max
        self._queues: dict[int, deque[PbftMessage]] = {}

    def add(self, message: PbftMessage) -> bool:
        """Buffer `message`; True if that pushed out an older one."""
        queue = self._queues.setdefault(message.replica, deque(maxlen=self._per_peer_max))
        full = len(queue) == queue.maxlen
        queue.append(message)
        return full

    def drain(self) -> list[PbftMessage]:
        """Everything buffered, by sender then arrival; the buffer is left empty."""
        messages = [message for _, queue in sorted(self._queues.items()) for message in queue]
        self._queues.clear()
        return messages

    def held_by(self, replica: int) -> int:
        queue = self._queues.get(replica)
        return 0 if queue is None else len(queue)

    def check_invariants(self) -> None:
        if self._queues:  # runs after every engine step; usually empty
            assert max(map(len, self._queues.values())) <= self._per_peer_max
