"""Run many PBFT simulation seeds by hand and summarise: seeds, scenarios, violations, time.

    .venv/bin/python scripts/sim_sweep.py --nodes 4 --seeds 10000-11499 [--fault-ticks 800]

Each seed runs the same mixed scenario generator and checkers as
tests/consensus/sim/test_pbft_sim.py (drops, delays, duplicates, partitions that heal,
crash/restart, a byzantine primary within f). A failing seed is printed with the command
that replays it; the exit code is the number of failing seeds (capped at 100).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consensus.sim.seeds import parse_seeds
from tests.consensus.sim.test_pbft_sim import _run_seed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--seeds", required=True, help='e.g. "0-4999" or "1,2,3"')
    parser.add_argument("--fault-ticks", type=int, default=800)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # byzantine scenarios warn by design; keep the summary
    seeds = parse_seeds(args.seeds)
    failures: list[tuple[int, str]] = []
    kinds: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    for count, seed in enumerate(seeds, 1):
        try:
            _run_seed(seed, node_count=args.nodes, fault_ticks=args.fault_ticks)
            kinds["ok"] += 1
        except AssertionError as error:
            first_line = str(error).splitlines()[0] if str(error) else "assertion"
            failures.append((seed, first_line))
            kinds["failed"] += 1
            print(f"seed {seed}: FAILED {first_line[:200]}", flush=True)
        if count % 100 == 0:
            elapsed = time.monotonic() - started
            print(
                f"{count}/{len(seeds)} seeds, {len(failures)} failed, {elapsed:.0f} s", flush=True
            )
    elapsed = time.monotonic() - started
    print(
        f"n={args.nodes} seeds={len(seeds)} ok={kinds['ok']} failed={len(failures)} "
        f"time={elapsed:.0f}s ({elapsed / max(1, len(seeds)):.2f} s/seed)"
    )
    for seed, reason in failures:
        print(
            f"  replay: SIM_SEED={seed} .venv/bin/python -m pytest "
            f"'tests/consensus/sim/test_pbft_sim.py::test_pbft_sim_long' ({reason[:120]})"
        )
    return min(len(failures), 100)


if __name__ == "__main__":
    raise SystemExit(main())
