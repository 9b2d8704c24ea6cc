"""The live one-line progress display on stderr, updated about once a second:
elapsed, offered rate, committed tx/s (last second), p50/p99 so far, height.

On a terminal the line rewrites itself (carriage return); otherwise (CI logs, tests) a full
line is written every LOG_EVERY_S seconds so logs stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, TextIO

from bench import stats
from bench.ledger import Ledger

if TYPE_CHECKING:
    from bench.loadgen import RunClock
    from bench.runner import RunSpec

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
LOG_EVERY_S = 5


class Progress:
    def __init__(
        self,
        ledger: Ledger,
        clock: RunClock,
        spec: RunSpec,
        *,
        enabled: bool,
        stream: TextIO,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._spec = spec
        self._enabled = enabled
        self._stream = stream
        self._tty = stream.isatty()
        self._last_sent = 0
        self._last_committed = 0
        self._ticks = 0
        self._wrote_partial = False

    def line(self) -> str:
        ledger = self._ledger
        sent_rate = ledger.sent - self._last_sent
        committed_rate = ledger.committed - self._last_committed
        self._last_sent, self._last_committed = ledger.sent, ledger.committed
        recent = sorted(ledger.recent_latencies_s)
        if recent:
            p50 = stats.percentile(recent, 50.0) * 1000
            p99 = stats.percentile(recent, 99.0) * 1000
            latency = f"p50 {p50:.0f} ms p99 {p99:.0f} ms"
        else:
            latency = "p50 - p99 -"
        return (
            f"[{self._clock.now():6.1f}s] {self._spec.label or self._spec.offered()}: "
            f"sent {sent_rate}/s committed {committed_rate}/s {latency} "
            f"height {ledger.height_max} pending {ledger.pending}"
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL_S)
            if stop.is_set() or not self._enabled:
                continue
            self._ticks += 1
            text = self.line()
            if self._tty:
                self._stream.write("\r\x1b[K" + text)
                self._wrote_partial = True
            elif self._ticks % LOG_EVERY_S == 0:
                self._stream.write(text + "\n")
            self._stream.flush()

    def finish(self) -> None:
        if self._wrote_partial:
            self._stream.write("\n")
            self._stream.flush()
            self._wrote_partial = False
