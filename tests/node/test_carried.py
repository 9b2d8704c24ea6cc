"""CarriedTxs (node/carried.py): which txs undecided blocks carry, by height, with a count
per hash so a tx comes back only when no undecided block carries it any more."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.carried import CarriedTxs

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


def test_a_hash_is_carried_until_every_height_that_carries_it_is_decided() -> None:
    carried = CarriedTxs(per_height_max=10)
    assert carried.carry(2, [A, B]) == [A, B]
    assert carried.carry(3, [A, C]) == [A, C]
    assert carried.carry(3, [A]) == [], "a second block at the same height adds nothing new"
    assert carried.heights() == [2, 3]
    assert carried.decide(2) == [B], "A is still carried at height 3"
    assert A in carried
    assert B not in carried
    assert sorted(carried.decide(5)) == [A, C]
    assert len(carried) == 0
    assert carried.heights() == []
    carried.check_invariants()


def test_a_height_records_at_most_its_bound_and_says_what_it_recorded() -> None:
    carried = CarriedTxs(per_height_max=2)
    assert carried.carry(2, [A, B, C]) == [A, B]
    assert C not in carried, "not recorded, so never held and never given back"
    assert carried.carry(2, [C]) == []
    assert carried.carry(3, [C]) == [C], "the bound is per height"
    assert carried.carry(4, []) == []
    assert carried.heights() == [2, 3], "an empty carry leaves no height behind"
    carried.check_invariants()


@given(
    st.lists(
        st.tuples(st.integers(1, 6), st.lists(st.sampled_from([A, B, C]), max_size=3)),
        max_size=12,
    ),
    st.integers(0, 7),
)
def test_decide_returns_exactly_the_hashes_no_undecided_height_carries(
    carries: list[tuple[int, list[bytes]]], decided: int
) -> None:
    carried = CarriedTxs(per_height_max=2)
    by_height: dict[int, set[bytes]] = {}
    for height, hashes in carries:
        recorded = carried.carry(height, hashes)
        by_height.setdefault(height, set()).update(recorded)
        assert len(by_height[height]) <= 2
        carried.check_invariants()
    before = {h for hashes in by_height.values() for h in hashes}
    after = {h for height, hashes in by_height.items() if height > decided for h in hashes}
    uncarried = carried.decide(decided)
    assert len(uncarried) == len(set(uncarried))
    assert set(uncarried) == before - after
    assert all((h in carried) == (h in after) for h in (A, B, C))
    carried.check_invariants()
