"""The latency and throughput math of bench/stats.py, against hand-computed cases and a
deliberately dumb reference implementation."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import stats


def dumb_percentile(values: list[float], percent: float) -> float:
    """The smallest sample v such that at least percent% of samples are <= v."""
    for candidate in sorted(values):
        at_or_below = sum(1 for v in values if v <= candidate)
        if at_or_below * 100 >= percent * len(values):
            return candidate
    raise AssertionError("unreachable")


def test_percentile_nearest_rank_on_a_known_list() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert stats.percentile(values, 50.0) == 50.0
    assert stats.percentile(values, 90.0) == 90.0
    assert stats.percentile(values, 99.0) == 99.0
    assert stats.percentile(values, 100.0) == 100.0
    assert stats.percentile(values, 0.0) == 1.0


def test_percentile_of_small_samples_is_a_real_sample() -> None:
    assert stats.percentile([0.2], 99.0) == 0.2
    assert stats.percentile([0.1, 0.5], 50.0) == 0.1
    assert stats.percentile([0.1, 0.5], 51.0) == 0.5


@given(
    st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=60),
    st.sampled_from([1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentile_matches_the_dumb_reference(values: list[float], percent: float) -> None:
    assert stats.percentile(sorted(values), percent) == dumb_percentile(values, percent)


def test_summarize_reports_each_figure() -> None:
    summary = stats.summarize([0.3, 0.1, 0.2, 0.4])
    assert summary is not None
    assert summary.count == 4
    assert summary.min_s == 0.1
    assert summary.max_s == 0.4
    assert summary.p50_s == 0.2
    assert summary.p99_s == 0.4
    assert math.isclose(summary.mean_s, 0.25)
    assert stats.summarize([]) is None


def test_summarize_refuses_negative_latency() -> None:
    with pytest.raises(AssertionError, match="negative latency"):
        stats.summarize([0.1, -0.001])


def test_per_second_counts_buckets_and_drops_out_of_window() -> None:
    counts = stats.per_second_counts([0.0, 0.5, 0.99, 1.0, 2.5, 3.0, -0.1], duration_s=3.0)
    assert counts == [3, 1, 1]


def test_rate_in_window() -> None:
    times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.5]
    assert stats.rate_in_window(times, start_s=1.0, end_s=3.0) == 2.0  # 4 events in 2 s
    assert stats.rate_in_window(times, start_s=3.0, end_s=3.0) == 0.0


def test_cdf_is_monotonic_ends_at_one_and_is_bounded() -> None:
    values = [i / 1000 for i in range(5000)]
    points = stats.cdf(values, points_max=100)
    assert len(points) <= 101
    assert points[-1] == [values[-1], 1.0]
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in itertools.pairwise(points))
    assert stats.cdf([]) == []


def point(offered: float, committed: float, p99: float | None) -> stats.SweepPoint:
    return stats.SweepPoint(offered_tps=offered, committed_tps=committed, p50_s=p99, p99_s=p99)


def test_saturation_when_throughput_stops_tracking_offered_load() -> None:
    points = [point(500, 499, 0.1), point(1000, 995, 0.12), point(2000, 1400, 0.3)]
    assert stats.saturation_index(points) == 2


def test_saturation_when_p99_explodes_even_if_throughput_keeps_up() -> None:
    points = [point(500, 500, 0.1), point(1000, 1000, 0.15), point(2000, 1990, 3.0)]
    assert stats.saturation_index(points) == 2


def test_no_saturation_when_everything_tracks_and_small_latency_growth_is_fine() -> None:
    points = [point(500, 500, 0.002), point(1000, 1000, 0.05)]  # 25x but under the 1 s floor
    assert stats.saturation_index(points) is None
    assert stats.saturation_index([]) is None


def test_saturation_uses_offered_order_not_list_order() -> None:
    points = [point(2000, 1000, 2.0), point(500, 500, 0.1)]
    assert stats.saturation_index(points) == 0
