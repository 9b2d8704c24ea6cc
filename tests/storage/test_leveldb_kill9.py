"""kill -9 a process in the middle of committing blocks; what it acknowledged must survive.

The child (storage_crash_child.py) prints each height after `commit_block` returns. The
parent SIGKILLs it after a seeded random delay, reopens the store, and checks: the committed
height is at least the last acknowledged one and at most one more (the block in flight);
every block up to it is intact; the next one is not half-present. Rounds reuse the same
directory, so each restart also recovers from the previous crash.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import keys
from storage.leveldb import LevelDbChainStore
from tests.storage.storage_helpers import assert_height_absent, assert_height_intact, fake_commit

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "storage_crash_child.py"
TX_COUNT = 100
ROUNDS = 4
BLOCKS_MAX_PER_ROUND = 5_000  # the child stops by itself even if nobody kills it
READY_TIMEOUT_SECONDS = 30


def last_acknowledged(lines: list[str], kind: str) -> int:
    heights = [int(line.split()[1]) for line in lines if line.startswith(kind + " ")]
    return max(heights, default=0)


def run_and_kill(path: Path, delay_seconds: float) -> tuple[int, list[str]]:
    """Start the child, SIGKILL it `delay_seconds` after it is ready; (start height, lines)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(BLOCKS_MAX_PER_ROUND), str(TX_COUNT)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        ready = child.stdout.readline().split()
        assert ready[:1] == ["ready"], f"child did not start: {ready}"
        time.sleep(delay_seconds)
        child.send_signal(signal.SIGKILL)
        output = child.stdout.read()
    finally:
        child.kill()  # no-op if already dead; never leave it running
        child.wait(timeout=READY_TIMEOUT_SECONDS)
        child.stdout.close()
    # Only whole lines count: a line cut by the kill was not acknowledged.
    lines = output.split("\n")[:-1]
    return int(ready[1]), lines


@pytest.mark.slow
def test_kill9_keeps_every_acknowledged_block(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    store_path = tmp_path / "chain"
    height = 0
    for round_number in range(ROUNDS):
        delay_seconds = rng.uniform(0.05, 0.5)
        start_height, lines = run_and_kill(store_path, delay_seconds)
        acknowledged = max(last_acknowledged(lines, "block"), start_height)
        store = LevelDbChainStore(store_path)
        try:
            height = store.committed_height()
            context = f"round {round_number}, delay {delay_seconds:.3f}s, acked {acknowledged}"
            assert acknowledged <= height <= acknowledged + 1, context
            for block_height in range(1, height + 1):
                assert_height_intact(store, fake_commit(block_height, tx_count=TX_COUNT))
            assert_height_absent(store, fake_commit(height + 1, tx_count=TX_COUNT))
            consensus_acked = last_acknowledged(lines, "consensus")
            last = store.consensus_load().get(b"last")
            if consensus_acked:
                assert last is not None, context
                assert keys.decode_height(last) >= consensus_acked, context
        finally:
            store.close()
    assert height > 0, "the child never committed a block: the test checked nothing"
