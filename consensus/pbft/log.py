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
from dataclasses import dataclass, field

from consensus.pbft.messages import (
    Commit,
    PbftMessage,
    Prepare,
    PreparedCertificate,
    PrePrepare,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Slot:
    seq: int
    view: int  # the view the per-view fields below belong to
    pre_prepare: PrePrepare | None = None
    prepares: dict[int, Prepare] = field(default_factory=dict)  # replica -> its PREPARE
    commits: dict[int, Commit] = field(default_factory=dict)  # replica -> its COMMIT
    prepare_sent: bool = False
    prepared: bool = False  # prepared(m, v, n) holds locally, in seq order (see engine)
    commit_sent: bool = False
    certificate: PreparedCertificate | None = None  # highest-view prepared certificate

    @property
    def digest(self) -> bytes | None:
        return self.pre_prepare.digest if self.pre_prepare is not None else None

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
        digest = self.digest
        return [p for _, p in sorted(self.prepares.items()) if p.digest == digest]

    def matching_commits(self) -> list[Commit]:
        digest = self.digest
        return [c for _, c in sorted(self.commits.items()) if c.digest == digest]


class MessageLog:
    """Slots for (low, low + window]; `advance` moves the low watermark and drops the rest."""

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

    def in_window(self, seq: int) -> bool:
        return self.low < seq <= self.high

    def get(self, seq: int) -> Slot | None:
        return self._slots.get(seq)

    def slot(self, seq: int) -> Slot:
        """The slot for `seq`, created on first use; seq must be inside the watermarks."""
        assert self.in_window(seq), f"seq {seq} outside ({self.low}, {self.high}]"
        slot = self._slots.get(seq)
        if slot is None:
            slot = Slot(seq=seq, view=self._view)
            self._slots[seq] = slot
        return slot

    def seqs(self) -> list[int]:
        return sorted(self._slots)

    def slots(self) -> list[Slot]:
        return [self._slots[seq] for seq in sorted(self._slots)]

    def __len__(self) -> int:
        return len(self._slots)

    def advance(self, low: int) -> list[int]:
        """Move the low watermark to `low` (a new stable checkpoint); returns dropped seqs."""
        assert low >= self.low, "the low watermark never moves back"
        self.low = low
        dropped = [seq for seq in self._slots if seq <= low]
        for seq in dropped:
            del self._slots[seq]
        return sorted(dropped)

    def enter_view(self, view: int) -> None:
        """A new view: every slot forgets its per-view votes, keeps its certificate."""
        self._view = view
        for slot in self._slots.values():
            slot.reset_for_view(view)

    def certificates(self) -> tuple[PreparedCertificate, ...]:
        """The set P of a VIEW-CHANGE (§4.4): highest-view certificate per seq, in seq order."""
        return tuple(slot.certificate for slot in self.slots() if slot.certificate is not None)

    def check_invariants(self) -> None:
        assert len(self._slots) <= self.window
        for seq, slot in self._slots.items():
            assert slot.seq == seq
            assert self.in_window(seq)
            assert slot.view == self._view
            assert not slot.prepared or slot.pre_prepare is not None
            assert not slot.commit_sent or slot.prepared
            if slot.certificate is not None:
                assert slot.certificate.seq == seq
                assert slot.certificate.view <= self._view


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
        assert all(len(queue) <= self._per_peer_max for queue in self._queues.values())
