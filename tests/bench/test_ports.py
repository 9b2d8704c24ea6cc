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


def test_a_port_handed_out_is_not_handed_out_again_before_it_is_bound() -> None:
    """A cluster's ports are chosen before its nodes bind them; a follower's ports chosen
    next must not land on them (a follower once failed to bind a validator's RPC port)."""
    rng = random.Random(11)
    base = ports.free_block(3, rng=rng)
    handed_out = set(range(base, base + 3))
    for _ in range(40):  # unbound all along, and the same seed: only the claim keeps them out
        again = ports.free_block(3, rng=random.Random(11))
        assert handed_out.isdisjoint(range(again, again + 3))
        handed_out.update(range(again, again + 3))


def test_the_claim_record_is_bounded() -> None:
    rng = random.Random(5)
    for _ in range(ports.CLAIMED_MAX // 50 + 2):
        ports.free_block(60, rng=rng)
    assert len(ports._claimed) <= ports.CLAIMED_MAX
