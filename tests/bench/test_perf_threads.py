"""scripts/perf/perf_threads.py: samples of a `perf script` dump are charged to the right
function and thread role (BENCHMARKS.md's "where the time goes" rests on it)."""

from __future__ import annotations

from collections import Counter

from tests.scripts_loader import load_script

perf_threads = load_script("perf/perf_threads.py")

DUMP = """\
seoulchain   100 15112.649562:    5000000 cpu-clock:
\t          2d0960 pysiphash+0x0 (/usr/lib/libpython3.12.so.1.0)
\t    7f00000010 py::decode_tx:/work/main/protocol/tx.py+0x12 ([JIT] tid 100)
\t    7f00000020 py::Mempool.add:/work/main/node/mempool.py+0x30 ([JIT] tid 100)

seoulchain   101 15112.650000:    4000000 cpu-clock:
\t          1234 crypto_sign_open+0x4 (/usr/lib/libsodium.so.23)
\t    7f00000030 py::crypto_sign_open:/venv/nacl/bindings/crypto_sign.py+0x8 ([JIT] tid 101)

seoulchain   102 15112.651000:    3000000 cpu-clock:
\t          5678 leveldb::crc32c::Extend+0x10 (/usr/lib/libleveldb.so.1)

seoulchain   103 15112.652000:    2000000 cpu-clock:
\t          9abc ext4_file_write_iter+0x3 ([kernel.kallsyms])
\t    7f00000040 py::LevelDbChainStore._write:storage/leveldb_store.py+0x5 ([JIT] tid 103)
"""


def test_samples_are_charged_to_the_innermost_python_function_or_the_native_leaf() -> None:
    found = list(perf_threads.samples(DUMP))
    assert found == [
        (100, 5_000_000, "decode_tx"),
        (101, 4_000_000, "crypto_sign_open"),
        (102, 3_000_000, "[N] leveldb::crc32c::Extend"),
        (103, 2_000_000, "LevelDbChainStore._write"),
    ]


def test_threads_are_classed_by_role() -> None:
    by_thread: dict[int, Counter[str]] = {}
    for thread, nanoseconds, function in perf_threads.samples(DUMP):
        by_thread.setdefault(thread, Counter())[function] += nanoseconds
    roles = {thread: perf_threads.role(thread, c, 100) for thread, c in by_thread.items()}
    assert roles == {100: "event loop", 101: "verify", 102: "native", 103: "executor"}
