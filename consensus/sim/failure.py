"""How the simulator reports a broken property: one exception type whose message says what
broke, the seed, how to reproduce it, and what each node saw last."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence


class SimulationFailure(AssertionError):
    """A safety or liveness property, or the engine contract, was violated in a simulation.

    It subclasses AssertionError so pytest shows it as a test failure, and so that
    `pytest.raises(SimulationFailure)` in a positive control cannot be satisfied by an
    unrelated error.
    """

    def __init__(self, message: str, *, seed: int, property_name: str) -> None:
        super().__init__(message)
        self.seed = seed
        self.property_name = property_name


def reproduce_hint(seed: int) -> str:
    """`SIM_SEED=<n> pytest <the running test>`, using pytest's own test id when present."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    test_id = current.rsplit(" ", 1)[0] if current else "tests/consensus/sim"
    if "[" in test_id:
        test_id = test_id.split("[", 1)[0]
    return f"SIM_SEED={seed} pytest '{test_id}'"


def format_failure(
    *,
    property_name: str,
    detail: str,
    seed: int,
    now: int,
    histories: Mapping[int, Sequence[str]],
) -> str:
    lines = [
        f"{property_name} violated at tick {now}, seed {seed}: {detail}",
        f"reproduce with: {reproduce_hint(seed)}",
        "last deliveries per node:",
    ]
    for node_id in sorted(histories):
        lines.append(f"  node {node_id}:")
        lines.extend(f"    {entry}" for entry in histories[node_id])
    return "\n".join(lines)
