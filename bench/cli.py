"""Command line of the bench: `seoulchain bench ...` and `python -m bench ...`.

node/cli.py wires it in with `bench.cli.add_arguments(parser)` on its `bench` sub-parser
and `bench.cli.run(args)` as the handler; `main(argv)` serves `python -m bench`.
User errors print one line ("seoulchain bench: error: ...") and exit 1, like the node CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import app, mix, schedule

log = logging.getLogger(__name__)

PROGRAM = "seoulchain bench"
TX_BYTES_MIN = 200
TX_BYTES_MAX = 4096  # 15 metadata values of 256 characters: the notary's own caps
DURATION_S_MAX = 3600.0
RATE_TPS_MAX = 1_000_000.0
TXS_MAX_CEILING = 2_000_000
CONCURRENCY_MAX = 10_000


def _positive_float(maximum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(f"must be > 0 and <= {maximum:g}")
        return value

    return parse


def _bounded_int(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be {minimum}..{maximum}")
        return value

    return parse


def _rates(text: str) -> list[float]:
    parse = _positive_float(RATE_TPS_MAX)
    rates = [parse(part) for part in text.split(",") if part.strip()]
    if not rates:
        raise argparse.ArgumentTypeError("give at least one rate, e.g. 500,1000,2000")
    return sorted(rates)


def _mix(text: str) -> dict[str, int]:
    try:
        return mix.parse_mix(text)
    except mix.MixError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every bench option, on the parser node/cli.py gives its `bench` command."""
    _add_cluster_options(parser)
    _add_load_options(parser)
    _add_output_options(parser)


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("cluster (default: launch a fresh one under --out)")
    where.add_argument("--nodes", type=_bounded_int(1, 64), default=4)
    where.add_argument("--consensus", choices=("pbft", "raft", "solo"), default="pbft")
    where.add_argument(
        "--agencies",
        type=_bounded_int(1, 64),
        default=8,
        help="agencies in a launched testnet (txs are signed round-robin)",
    )
    where.add_argument(
        "--attach",
        type=Path,
        metavar="DIR",
        help="use the running cluster of this testnet directory",
    )
    where.add_argument(
        "--rpc",
        action="append",
        metavar="URLS",
        help="use running nodes at these RPC URLs (comma-separated, in validator order)",
    )
    where.add_argument(
        "--metrics",
        action="append",
        metavar="URLS",
        help="with --rpc: their /metrics URLs, same order",
    )
    where.add_argument(
        "--agencies-dir",
        type=Path,
        metavar="DIR",
        help="agency key files (agency*.json), needed with --rpc",
    )
    where.add_argument(
        "--keep-cluster", action="store_true", help="leave a launched cluster running at the end"
    )


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load")
    load.add_argument(
        "--rate",
        type=_positive_float(RATE_TPS_MAX),
        default=500.0,
        help="open loop: offered tx/s (default 500, below a 4-node PBFT cluster's "
        "saturation on a 2-core machine)",
    )
    load.add_argument(
        "--concurrency",
        type=_bounded_int(1, CONCURRENCY_MAX),
        help="closed loop instead: this many workers, each waits for its commit",
    )
    load.add_argument(
        "--sweep",
        type=_rates,
        metavar="R1,R2,...",
        help="one open-loop run per rate; finds the saturation point",
    )
    load.add_argument("--duration", type=_positive_float(DURATION_S_MAX), default=30.0)
    load.add_argument(
        "--warmup",
        type=float,
        help="seconds left out of steady-state figures (default min(5, 20%%))",
    )
    load.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="seconds to wait for pending txs after sending stops",
    )
    load.add_argument("--txs-max", type=_bounded_int(1, TXS_MAX_CEILING), default=200_000)
    load.add_argument("--tx-bytes", type=_bounded_int(TX_BYTES_MIN, TX_BYTES_MAX), default=250)
    load.add_argument(
        "--batch-ms",
        type=_positive_float(1000.0),
        default=10.0,
        help="open loop: one broadcast_txs call per node turn every this many ms",
    )
    load.add_argument(
        "--mix",
        type=_mix,
        metavar="KIND=W,...",
        help="weights of service kinds (notary, asset, fund, reward, credential, vote), "
        "e.g. notary=50,asset=20,fund=10,reward=10,credential=5,vote=5; default: notary only",
    )
    load.add_argument("--sign-workers", type=_bounded_int(0, 2), default=2)
    load.add_argument("--fault", metavar="kill-primary@SECONDS")
    load.add_argument(
        "--subscribe",
        choices=("first", "all"),
        default="first",
        help="NewBlock streams: first node only, or every node",
    )
    load.add_argument("--seed", type=int, default=None, help="seed for port choice")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", type=Path, help="results directory (default bench-results/<UTC time>)"
    )
    output.add_argument(
        "--prometheus",
        action="store_true",
        help="also run a real Prometheus server scraping the cluster",
    )
    output.add_argument("--keep-prometheus", action="store_true")
    output.add_argument("--no-plots", action="store_true")
    output.add_argument("--no-progress", action="store_true")
    output.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run the bench for parsed `args`; the exit code."""
    problem = _check(args)
    if problem:
        print(f"{PROGRAM}: error: {problem}", file=sys.stderr)
        return 2
    if args.out is None:
        args.out = Path("bench-results") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if not hasattr(args, "argv"):  # called from node/cli.py: argv is "seoulchain bench ..."
        args.argv = sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return app.run_bench(args)
    except app.USER_ERRORS as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _check(args: argparse.Namespace) -> str | None:
    if args.batch_ms / 1000.0 < schedule.BATCH_INTERVAL_S_MIN:
        return f"--batch-ms must be >= {schedule.BATCH_INTERVAL_S_MIN * 1000:g}"
    if args.attach and args.rpc:
        return "--attach and --rpc are alternatives; give one"
    if args.concurrency and args.sweep:
        return "--sweep is open loop; drop --concurrency"
    if args.warmup is not None and not 0 <= args.warmup < args.duration:
        return "--warmup must be >= 0 and below --duration"
    if args.drain < 0:
        return "--drain must be >= 0"
    if args.consensus == "solo" and args.fault:
        return "--fault kill-primary needs a multi-node cluster (pbft or raft)"
    if args.fault:
        from bench.faults import FaultError, parse_fault

        try:
            parse_fault(args.fault)
        except FaultError as error:
            return str(error)
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Benchmark a seoulchain cluster (docs/BENCHMARKS-HOWTO.md)"
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    args.argv = arguments
    return run(args)
