"""Quorum arithmetic for n validators, of which at most f = floor((n - 1) / 3) are byzantine.

A BFT quorum must make any two quorums intersect in at least f + 1 validators (so in at
least one honest one), and must be reachable with f validators silent. The smallest such
size is ceil((n + f + 1) / 2). It equals the paper's 2f + 1 when n = 3f + 1, and is larger
when n is not of that form (n = 5: 4, not 3 — two quorums of 3 out of 5 could share only a
single, byzantine, validator).
"""

from __future__ import annotations


def max_faulty(validator_count: int) -> int:
    assert validator_count >= 1
    return (validator_count - 1) // 3


def bft_quorum(validator_count: int) -> int:
    n = validator_count
    f = max_faulty(n)
    quorum = (n + f) // 2 + 1
    assert 2 * quorum - n >= f + 1, "two quorums must share an honest validator"
    assert quorum <= n - f, "a quorum must be reachable with f validators silent"
    return quorum


def weak_quorum(validator_count: int) -> int:
    """f + 1: enough to contain at least one honest validator."""
    return max_faulty(validator_count) + 1


def crash_quorum(validator_count: int) -> int:
    """Raft majority."""
    return validator_count // 2 + 1
