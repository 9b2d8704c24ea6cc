"""The open-loop send schedule: when each batch is due and how many txs it carries.

Open loop means the schedule is fixed before the run and never waits for answers: batch k
is due at k * interval, and carries the txs whose ideal send times (i / rate) have come by
then (never one early, so no latency can be negative; batching adds at most one interval).
Latency is measured from each tx's ideal send time, not from when it actually left, so a
stalled sender or a slow node shows up as latency instead of being hidden (no coordinated
omission). Pure: the driver in loadgen.py supplies the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

BATCH_INTERVAL_S_DEFAULT = 0.01
BATCH_INTERVAL_S_MIN = 0.001


@dataclass(frozen=True, slots=True)
class Batch:
    due_s: float  # offset from the run's start at which the batch should be sent
    first: int  # index of its first tx
    count: int  # how many txs (>= 1)

    def ideal_send_s(self, index: int, rate_tps: float) -> float:
        """The ideal send time of tx `index` of this batch (latency is measured from it)."""
        assert self.first <= index < self.first + self.count
        return index / rate_tps


def open_loop_batches(
    *, rate_tps: float, duration_s: float, interval_s: float, txs_max: int
) -> Iterator[Batch]:
    """Batches for `duration_s` at `rate_tps`, at most `txs_max` txs in all.

    Tx i's ideal time is i / rate; the batch due at k * interval carries every tx whose
    ideal time is <= k * interval, so no tx leaves before its ideal time, nor later than one
    interval after it when the sender keeps up."""
    assert rate_tps > 0
    assert duration_s > 0
    assert txs_max >= 0
    assert interval_s >= BATCH_INTERVAL_S_MIN
    total = min(txs_max, math.floor(rate_tps * duration_s))
    sent = 0
    slot = 0
    while sent < total:
        due_s = slot * interval_s
        due_count = min(total, math.floor(due_s * rate_tps + 1e-9) + 1)
        if due_count > sent:
            yield Batch(due_s=due_s, first=sent, count=due_count - sent)
            sent = due_count
        slot += 1
