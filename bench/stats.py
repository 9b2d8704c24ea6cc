"""Pure measurement math: percentiles, latency summaries, per-second throughput, CDFs, and
the saturation test of a rate sweep. No I/O and no clocks, so every figure in a report can
be recomputed from results.json and checked by a unit test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PERCENTILES = (50.0, 90.0, 99.0)
CDF_POINTS_MAX = 200  # a CDF in results.json: enough to plot, small enough to read
# Saturation: committed below this share of offered, or p99 above this many times the
# lowest rate's p99 (and above the absolute floor, so 2 ms -> 20 ms is not an "explosion").
SATURATION_THROUGHPUT_SHARE = 0.9
SATURATION_P99_FACTOR = 10.0
SATURATION_P99_FLOOR_S = 1.0


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile (the value below which `percent`% of samples fall, at least
    one sample's worth): no interpolation, so every figure is a latency that happened."""
    assert sorted_values, "percentile of no samples"
    assert 0.0 <= percent <= 100.0
    rank = max(1, math.ceil(percent / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    mean_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    min_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_s": self.mean_s,
            "p50_s": self.p50_s,
            "p90_s": self.p90_s,
            "p99_s": self.p99_s,
            "max_s": self.max_s,
            "min_s": self.min_s,
        }


def summarize(latencies_s: Sequence[float]) -> LatencySummary | None:
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    assert ordered[0] >= 0.0, "negative latency: a clock went backwards or a bug"
    return LatencySummary(
        count=len(ordered),
        mean_s=sum(ordered) / len(ordered),
        p50_s=percentile(ordered, 50.0),
        p90_s=percentile(ordered, 90.0),
        p99_s=percentile(ordered, 99.0),
        max_s=ordered[-1],
        min_s=ordered[0],
    )


def per_second_counts(times_s: Sequence[float], *, duration_s: float) -> list[int]:
    """How many events fell in each whole second [k, k+1) of [0, duration_s); events
    outside the window are not counted."""
    buckets = [0] * max(0, math.ceil(duration_s))
    for moment in times_s:
        if 0.0 <= moment < duration_s:
            buckets[int(moment)] += 1
    return buckets


def rate_in_window(times_s: Sequence[float], *, start_s: float, end_s: float) -> float:
    """Events per second inside [start_s, end_s)."""
    if end_s <= start_s:
        return 0.0
    inside = sum(1 for moment in times_s if start_s <= moment < end_s)
    return inside / (end_s - start_s)


def cdf(latencies_s: Sequence[float], *, points_max: int = CDF_POINTS_MAX) -> list[list[float]]:
    """[[latency_s, fraction <= latency]] at up to points_max evenly spaced ranks."""
    if not latencies_s:
        return []
    ordered = sorted(latencies_s)
    total = len(ordered)
    step = max(1, total // points_max)
    ranks = list(range(step - 1, total, step))
    if ranks[-1] != total - 1:
        ranks.append(total - 1)
    return [[ordered[rank], (rank + 1) / total] for rank in ranks]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    offered_tps: float
    committed_tps: float
    p50_s: float | None
    p99_s: float | None


def saturation_index(points: Sequence[SweepPoint]) -> int | None:
    """Index of the first sweep point (in offered order) where the chain is saturated:
    throughput stops tracking offered load, or p99 latency explodes. None if none is."""
    if not points:
        return None
    ordered = sorted(range(len(points)), key=lambda i: points[i].offered_tps)
    baseline_p99 = points[ordered[0]].p99_s
    for index in ordered:
        point = points[index]
        if point.committed_tps < SATURATION_THROUGHPUT_SHARE * point.offered_tps:
            return index
        if point.p99_s is None:
            return index  # nothing committed at all
        if (
            baseline_p99 is not None
            and point.p99_s > SATURATION_P99_FACTOR * baseline_p99
            and point.p99_s > SATURATION_P99_FLOOR_S
        ):
            return index
    return None
