"""Loopback ports for local clusters, chosen outside the kernel's ephemeral range.

Why: a node killed and restarted on its ports (a crash test, `--fault`) leaves them free for
a moment, and every outgoing connection on the machine (a peer dialing, the load generator,
an RPC client) takes its local port from the ephemeral range. If a node's port lies inside
that range, an outgoing connection can take it in that moment and the restarted node fails
with "address already in use" — it happened to a crash test. Ports below the ephemeral range
(or above it, if it starts low) are never handed out that way, so a free one stays free
until someone binds it on purpose.

A port that is free now may still be wanted by a listener that has not started yet: a
cluster's ports are chosen before its nodes bind them, and a test then chooses ports for a
follower or a Prometheus server. So every port handed out here is remembered (the most recent
`CLAIMED_MAX`) and not handed out again by this process, whether or not it is bound yet.
"""

from __future__ import annotations

import random
import socket
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_EPHEMERAL_DEFAULT = (32_768, 60_999)  # Linux's default
_LOWEST = 10_000  # below: well-known and registered services
_HIGHEST = 65_535
CLAIMED_MAX = 8_192  # ports remembered as handed out; older ones are long bound or released

_claimed: OrderedDict[int, None] = OrderedDict()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (inclusive); Linux's default if unreadable."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return _EPHEMERAL_DEFAULT
    return low, high


def listen_range() -> tuple[int, int]:
    """[start, stop) of ports for listeners: the larger gap outside the ephemeral range."""
    low, high = ephemeral_range()
    below = (_LOWEST, low)
    above = (high + 1, _HIGHEST + 1)
    return max(below, above, key=lambda span: span[1] - span[0])


def port_free(port: int) -> bool:
    """Whether a listener could bind `port` on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_pattern(
    offsets: Sequence[int], *, rng: random.Random, step: int = 1, attempts: int = 64
) -> int:
    """A base B (a multiple of `step` from the range's start) such that every B + offset is
    in `listen_range`, free right now and not handed out before by this process; the ports
    are then claimed (see the module doc)."""
    start, stop = listen_range()
    span = max(offsets) + 1
    for _ in range(attempts):
        base = rng.randrange(start, stop - span, step)
        wanted = [base + offset for offset in offsets]
        if all(not claimed(port) and port_free(port) for port in wanted):
            _claim(wanted)
            return base
    raise OSError(f"no free ports for offsets {list(offsets)} in {start}-{stop - 1}")


def free_block(count: int, *, rng: random.Random, attempts: int = 64) -> int:
    """A port P such that P .. P+count-1 are free and unclaimed, now claimed."""
    return free_pattern(range(count), rng=rng, attempts=attempts)


def free_listen_port() -> int:
    """One free, unclaimed port in `listen_range` (not port 0's ephemeral choice), claimed."""
    return free_block(1, rng=random.Random())


def claimed(port: int) -> bool:
    """Whether this process handed `port` out (among the most recent `CLAIMED_MAX`)."""
    return port in _claimed


def _claim(ports: Sequence[int]) -> None:
    for port in ports:
        _claimed[port] = None
        _claimed.move_to_end(port)
    while len(_claimed) > CLAIMED_MAX:
        _claimed.popitem(last=False)
