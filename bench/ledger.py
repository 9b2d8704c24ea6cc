"""Per-tx bookkeeping of one measured run: when each tx should have left, when its commit
was seen, or why it was refused; and the blocks seen on the event stream.

Pure (times are passed in, seconds since the run's start), so the latency math is unit
tested without a node. Commit latency of a tx = the arrival time of the first NewBlock
event carrying its hash - its ideal send time (schedule.py explains why ideal, not actual).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

REJECT_SAMPLES_MAX = 32  # distinct reasons whose first log line is kept
REJECT_REASONS_MAX = 64  # distinct reasons counted; any further one counts as "other"
REJECT_LOG_CHARS_MAX = 200
RECENT_LATENCIES_MAX = 20_000  # what the live progress line computes percentiles over


@dataclass(frozen=True, slots=True)
class BlockSeen:
    at_s: float  # first arrival of this height's NewBlock event, any subscribed node
    height: int
    txs: int  # all txs in the block (ours and anyone else's)
    ours: int  # txs of this run in the block
    node: str  # which node's stream delivered it first


class Ledger:
    """Every tx of the run has an index (its position in the pre-signed list)."""

    def __init__(self, hashes: Sequence[str]) -> None:
        self._hashes = hashes
        self._all = frozenset(hashes)
        self.ideal_s: list[float | None] = [None] * len(hashes)
        self.actual_s: list[float | None] = [None] * len(hashes)  # when it really left
        self.commit_s: list[float | None] = [None] * len(hashes)
        self._pending: dict[str, int] = {}  # hash -> index, sent and not yet committed
        self.rejected: Counter[str] = Counter()
        self.reject_samples: dict[str, str] = {}
        self.blocks: list[BlockSeen] = []
        self._heights: set[int] = set()
        self.sent = 0
        self.committed = 0
        self.foreign_txs = 0  # txs in seen blocks that are not ours (other clients)
        self.recent_latencies_s: deque[float] = deque(maxlen=RECENT_LATENCIES_MAX)
        self.height_max = 0
        self.malformed_events = 0
        self.streams_ended: dict[str, str] = {}  # node -> why its event stream ended early
        # height -> [(position in the block, our tx index)]: where to read each committed
        # tx's execution result (block_results) after the run; one entry per commit
        self.positions: dict[int, list[tuple[int, int]]] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def sent_at(self, index: int, ideal_s: float, actual_s: float | None = None) -> None:
        """Tx `index` leaves now (`actual_s`); its latency counts from `ideal_s`."""
        assert self.ideal_s[index] is None, f"tx {index} sent twice"
        self.ideal_s[index] = ideal_s
        self.actual_s[index] = ideal_s if actual_s is None else actual_s
        self._pending[self._hashes[index]] = index
        self.sent += 1

    def refused(self, index: int, reason: str, detail: str = "") -> None:
        """The node refused tx `index` (or the call carrying it failed): it will not commit."""
        if self._pending.pop(self._hashes[index], None) is None:
            return  # already committed (a late duplicate answer) or already refused
        if reason not in self.rejected and len(self.rejected) >= REJECT_REASONS_MAX:
            reason = "other"
        self.rejected[reason] += 1
        if reason not in self.reject_samples and len(self.reject_samples) < REJECT_SAMPLES_MAX:
            self.reject_samples[reason] = detail[:REJECT_LOG_CHARS_MAX]

    def block_seen(self, at_s: float, data: dict[str, Any], *, node: str) -> list[int]:
        """Record a NewBlock event; the indexes of our txs it committed for the first time.
        The same height from another node's stream only adds commits not seen yet. An event
        of the wrong shape is counted in `malformed_events` and otherwise ignored."""
        height = data.get("height")
        hashes = data.get("tx_hashes")
        txs = data.get("num_txs", len(hashes) if isinstance(hashes, list) else None)
        if not (isinstance(height, int) and isinstance(hashes, list) and isinstance(txs, int)):
            self.malformed_events += 1
            return []
        newly: list[int] = []
        for position, tx_hash in enumerate(hashes):
            index = self._pending.pop(tx_hash, None) if isinstance(tx_hash, str) else None
            if index is not None:
                self.commit_s[index] = at_s
                newly.append(index)
                self.positions.setdefault(height, []).append((position, index))
                ideal = self.ideal_s[index]
                assert ideal is not None, "a pending tx always has a send time"
                self.recent_latencies_s.append(at_s - ideal)
        self.committed += len(newly)
        self.height_max = max(self.height_max, height)
        if height not in self._heights:
            self._heights.add(height)
            ours = sum(1 for h in hashes if isinstance(h, str) and h in self._all)
            self.foreign_txs += max(0, txs - ours)
            self.blocks.append(BlockSeen(at_s, height, txs, ours, node))
        return newly

    def latencies_s(self, *, sent_after_s: float = 0.0) -> list[float]:
        """Commit latencies of txs whose ideal send time is at or after `sent_after_s`."""
        latencies = []
        for ideal, committed in zip(self.ideal_s, self.commit_s, strict=True):
            if ideal is not None and committed is not None and ideal >= sent_after_s:
                latencies.append(committed - ideal)
        return latencies

    def commit_times_s(self) -> list[float]:
        return [moment for moment in self.commit_s if moment is not None]

    def is_committed(self, index: int) -> bool:
        return self.commit_s[index] is not None
