"""Where a node's CPU goes, per committed tx, by thread role, from a `perf script` dump.

Why perf and not only py-spy: a node's CPU is spread over the event loop, the executor
thread, the signature-verify threads and LevelDB's own background thread; the issue's
target is CPU per committed tx, so the question is "how many µs per tx does each function
cost, on which thread", including native code (libsodium, LevelDB, the kernel). With
Python >= 3.12 and PYTHONPERFSUPPORT=1 every Python function has a perf trampoline, so
`perf record --call-graph dwarf` names the innermost Python function of every sample.
docs/BENCHMARKS-HOWTO.md ("Profiling a node of a running cluster") gives the commands.

Each sample is charged to its innermost Python function, or to its native leaf symbol
([N]) or kernel symbol ([K]) when no Python frame is on the stack. Threads are classed as
the event loop (the thread whose id is the process id), verify (mostly libsodium's
`crypto_sign_open`), native (no Python frame at all: LevelDB's compaction thread) and
executor (the rest: block execution and storage writes).

    python scripts/perf/perf_threads.py node1.script --txs 36210 --pid 4242 [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

_PERIOD = re.compile(r"(\d+) cpu-clock")
_PY_FRAME = re.compile(r"py::(\S+?):(\S+)\+")
_OFFSET = re.compile(r"\+0x[0-9a-f]+")
ROLES = ("event loop", "executor", "verify", "native")


def samples(text: str) -> Iterator[tuple[int, int, str]]:
    """(thread id, nanoseconds, charged function) for each sample of a `perf script` dump
    of a `-e cpu-clock --call-graph dwarf` recording."""
    for block in text.split("\n\n"):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        if len(lines) < 2:
            continue
        period = _PERIOD.search(lines[0])
        if period is None:
            continue
        thread = int(lines[0].split()[1].split("/")[-1])
        yield thread, int(period.group(1)), _charged(lines[1:])


def _charged(frames: list[str]) -> str:
    for frame in frames:
        python = _PY_FRAME.search(frame)
        if python is not None:
            return python.group(1)
    leaf = frames[0].split(None, 1)
    symbol = _OFFSET.sub("", leaf[1] if len(leaf) > 1 else "?").split(" (")[0]
    return ("[K] " if "kallsyms" in frames[0] else "[N] ") + symbol


def role(thread: int, functions: Counter[str], pid: int) -> str:
    if thread == pid:
        return "event loop"
    total = sum(functions.values())
    if functions.get("crypto_sign_open", 0) > total / 2:
        return "verify"
    if all(name.startswith("[") for name in functions):
        return "native"
    return "executor"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", type=Path, help="output of `perf script -i FILE.perf`")
    parser.add_argument("--txs", type=float, required=True, help="txs committed in the window")
    parser.add_argument("--pid", type=int, required=True, help="the node's process id")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    by_thread: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for thread, nanoseconds, function in samples(args.script.read_text(errors="replace")):
        by_thread[thread][function] += nanoseconds
    by_role: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for thread, functions in by_thread.items():
        by_role[role(thread, functions, args.pid)].update(functions)
    grand = sum(sum(functions.values()) for functions in by_role.values())
    print(f"total: {grand / 1e9:.2f} s CPU, {grand / 1e3 / args.txs:.1f} µs per committed tx")
    for name in ROLES:
        charged = by_role.get(name)
        if not charged:
            continue
        total = sum(charged.values())
        print(f"{name}: {total / 1e3 / args.txs:.1f} µs/tx")
        for function, nanoseconds in charged.most_common(args.top):
            print(f"   {nanoseconds / 1e3 / args.txs:7.2f}  {function}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
