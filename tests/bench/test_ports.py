"""bench/ports.py: listener ports for local clusters stay outside the kernel's ephemeral
range, so a restarted node cannot find its port taken by someone's outgoing connection."""

from __future__ import annotations

import random
import socket

from bench import ports


def test_the_listen_range_does_not_overlap_the_ephemeral_range() -> None:
    low, high = ports.ephemeral_range()
    start, stop = ports.listen_range()
    assert stop - start >= 1_000, "room for a few dozen clusters"
    assert stop <= low or start > high


def test_free_blocks_are_free_and_outside_the_ephemeral_range() -> None:
    low, high = ports.ephemeral_range()
    base = ports.free_block(30, rng=random.Random(7))
    assert all(not low <= port <= high for port in range(base, base + 30))
    assert all(ports.port_free(port) for port in range(base, base + 30))


def test_a_bound_port_is_not_free() -> None:
    port = ports.free_listen_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert not ports.port_free(port)
    low, high = ports.ephemeral_range()
    assert not low <= port <= high
