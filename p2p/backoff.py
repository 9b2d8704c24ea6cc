"""Jittered exponential backoff and misbehaviour bans: pure, with injected randomness."""

from __future__ import annotations

import math
import random


def backoff_delay_s(*, attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry number `attempt` (1-based): base * 2**(attempt-1), capped, then
    scaled by a random factor in [0.5, 1.0) so that peers restarted together do not redial
    in lockstep."""
    assert attempt >= 1
    exponent = min(attempt - 1, 32)  # 2**32 * base is far past any cap; avoids huge floats
    ceiling = min(max_s, math.ldexp(base_s, exponent))
    return ceiling * (0.5 + rng.random() / 2)


class BanList:
    """Peers that broke the protocol are refused for a while; each repeat doubles the ban.

    Bounded: only authenticated keys from the allowed set are ever banned.
    """

    def __init__(self, *, base_s: float, max_s: float) -> None:
        self._base_s = base_s
        self._max_s = max_s
        self._bans: dict[bytes, tuple[float, int]] = {}  # key -> (until, offences)

    def ban(self, key: bytes, *, now: float) -> float:
        _, offences = self._bans.get(key, (0.0, 0))
        offences += 1
        duration = min(self._max_s, math.ldexp(self._base_s, min(offences - 1, 32)))
        self._bans[key] = (now + duration, offences)
        return duration

    def remaining_s(self, key: bytes, *, now: float) -> float:
        until, _ = self._bans.get(key, (0.0, 0))
        return max(0.0, until - now)
