"""Quorum sizes for n = 1..31 against the two conditions a BFT quorum must meet, found by
search rather than by formula:

- safety: any two quorums share at least f + 1 validators, so at least one honest one;
- availability: a quorum can be formed with f validators silent (q <= n - f);

where f is the largest number of byzantine validators n can tolerate (n >= 3f + 1).
The smallest intersection of two q-subsets is found by enumerating subsets for small n
and by the explicit worst case (first q and last q validators) for all n; the two are
checked to agree where both are computed.
"""

from __future__ import annotations

from itertools import combinations

import pytest

from protocol.quorum import bft_quorum, crash_quorum, max_faulty, weak_quorum

ENUMERATE_UP_TO = 7


def _largest_tolerable_faults(n: int) -> int:
    return max(f for f in range(n) if n >= 3 * f + 1)


def _smallest_overlap_enumerated(n: int, q: int) -> int:
    validators = range(n)
    first = set(range(q))  # by symmetry one quorum can be fixed
    return min(len(first & set(other)) for other in combinations(validators, q))


def _smallest_overlap_worst_case(n: int, q: int) -> int:
    return len(set(range(q)) & set(range(n - q, n)))


def _smallest_safe_and_available_quorum(n: int) -> int | None:
    f = _largest_tolerable_faults(n)
    for q in range(1, n + 1):
        if _smallest_overlap_worst_case(n, q) >= f + 1 and q <= n - f:
            return q
    return None


@pytest.mark.parametrize("n", range(1, ENUMERATE_UP_TO + 1))
def test_worst_case_overlap_matches_enumeration(n):
    for q in range(1, n + 1):
        assert _smallest_overlap_worst_case(n, q) == _smallest_overlap_enumerated(n, q)


@pytest.mark.parametrize("n", range(1, 32))
def test_bft_quorum_is_the_smallest_safe_and_available_size(n):
    assert max_faulty(n) == _largest_tolerable_faults(n)
    assert bft_quorum(n) == _smallest_safe_and_available_quorum(n)


@pytest.mark.parametrize("n", range(1, 32))
def test_weak_and_crash_quorums(n):
    f = _largest_tolerable_faults(n)
    assert weak_quorum(n) == f + 1  # any f + 1 validators include an honest one
    majority = crash_quorum(n)
    assert _smallest_overlap_worst_case(n, majority) >= 1  # two majorities always meet
    assert _smallest_overlap_worst_case(n, majority - 1) == 0 or majority == 1


def test_known_values():
    """The table in docs/PROTOCOL.md §Quorum."""
    assert [bft_quorum(n) for n in range(1, 11)] == [1, 2, 2, 3, 4, 4, 5, 6, 6, 7]
    assert bft_quorum(5) == 4  # not 2f + 1 = 3: two 3-of-5 quorums may share one validator
