"""Which seeds a simulation test runs: a fixed CI range unless the environment says otherwise.

SIM_SEED=17            exactly that seed (what every failure message tells you to run)
SIM_SEEDS=0-4999       an inclusive range, for long runs by hand
SIM_SEEDS=1,2,40-45    a list of seeds and ranges
"""

from __future__ import annotations

import os
from collections.abc import Iterable

SEEDS_MAX = 1_000_000  # one parametrised test per seed: keep collection bounded


def parse_seeds(text: str) -> list[int]:
    """Parse "0-4999" or "1,2,40-45"; ValueError with the offending part otherwise."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low_text, dash, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise ValueError(f"bad seed range {part!r}: want N or N-M") from None
        if low < 0 or high < low:
            raise ValueError(f"bad seed range {part!r}: want 0 <= N <= M")
        seeds.extend(range(low, high + 1))
        if len(seeds) > SEEDS_MAX:
            raise ValueError(f"more than {SEEDS_MAX} seeds")
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


def seeds_from_env(default: Iterable[int]) -> list[int]:
    """SIM_SEED, else SIM_SEEDS, else `default`."""
    single = os.environ.get("SIM_SEED")
    if single:
        return parse_seeds(single)
    many = os.environ.get("SIM_SEEDS")
    if many:
        return parse_seeds(many)
    return list(default)
