"""Token bucket: a pure rate limiter with an injected clock (RELIABILITY R3)."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """Allows `rate_per_s` units per second on average and bursts up to `burst`.

    `take(n)` answers whether n units fit now; refused units are not queued, the caller
    drops and counts them. `available()` + `consume()` let a caller charge a whole batch
    with one clock read. The clock is injected so tests need no sleeps.
    """

    __slots__ = ("_burst", "_clock", "_last", "_rate_per_s", "_tokens")

    def __init__(self, *, rate_per_s: float, burst: float, clock: Callable[[], float]) -> None:
        assert rate_per_s > 0
        assert burst >= 1
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def available(self, now: float | None = None) -> float:
        """Refill for the time passed and return the tokens on hand (not consuming them).
        `now` lets a caller charging two buckets read the clock once."""
        if now is None:
            now = self._clock()
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate_per_s)
        return self._tokens

    def consume(self, amount: float) -> None:
        """Spend tokens the caller saw in `available()`."""
        assert amount <= self._tokens + 1e-9
        self._tokens -= amount

    def take(self, amount: float = 1.0) -> bool:
        if self.available() >= amount:
            self._tokens -= amount
            return True
        return False
