"""Loopback ports for local clusters, chosen outside the kernel's ephemeral range.

Why: a node killed and restarted on its ports (a crash test, `--fault`) leaves them free for
a moment, and every outgoing connection on the machine (a peer dialing, the load generator,
an RPC client) takes its local port from the ephemeral range. If a node's port lies inside
that range, an outgoing connection can take it in that moment and the restarted node fails
with "address already in use" — it happened to a crash test. Ports below the ephemeral range
(or above it, if it starts low) are never handed out that way, so a free one stays free
until someone binds it on purpose.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_EPHEMERAL_DEFAULT = (32_768, 60_999)  # Linux's default
_LOWEST = 10_000  # below: well-known and registered services
_HIGHEST = 65_535


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


def free_block(count: int, *, rng: random.Random, attempts: int = 64) -> int:
    """A port P such that P .. P+count-1 are all free right now, in `listen_range`."""
    start, stop = listen_range()
    for _ in range(attempts):
        base = rng.randrange(start, stop - count)
        if all(port_free(port) for port in range(base, base + count)):
            return base
    raise OSError(f"no {count} consecutive free ports in {start}-{stop - 1}")


def free_listen_port() -> int:
    """One free port in `listen_range` (not port 0's ephemeral choice)."""
    return free_block(1, rng=random.Random())
