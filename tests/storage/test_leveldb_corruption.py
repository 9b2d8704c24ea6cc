"""LevelDB-only: a damaged store is detected and refused with a clear error, never used.

Each test builds a real store, closes it, damages it from outside (plyvel directly, or the
files themselves), reopens, and asserts CorruptionError/StorageError naming what is wrong.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import plyvel
import pytest

from storage import keys
from storage.checksum import seal_value
from storage.interface import CorruptionError, StorageError
from storage.leveldb import LevelDbChainStore
from tests.storage.storage_helpers import (
    assert_height_absent,
    assert_height_intact,
    build_store,
    fake_commit,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def tamper(path: Path, change: Callable[[plyvel.DB], None]) -> None:
    """Edit the store's LevelDB directly, bypassing the store and its checksums."""
    db = plyvel.DB(str(path))
    try:
        change(db)
    finally:
        db.close()


def block_key(height: int) -> bytes:
    return keys.height_key(keys.BLOCK, height)


def test_garbage_value_under_a_real_key_is_caught_on_read(tmp_path: Path) -> None:
    build_store(tmp_path, 3)
    tamper(tmp_path, lambda db: db.put(block_key(2), b"forged block bytes"))
    store = LevelDbChainStore(tmp_path)  # height 3 is intact, so open succeeds
    with pytest.raises(CorruptionError, match="block@2"):
        store.block(2)
    assert store.block(1) == fake_commit(1, tx_count=5).block
    store.close()


def test_single_bit_flip_is_caught(tmp_path: Path) -> None:
    build_store(tmp_path, 3)

    def flip(db: plyvel.DB) -> None:
        stored = bytearray(db.get(keys.height_key(keys.SEAL, 1)))
        stored[5] ^= 0x01
        db.put(keys.height_key(keys.SEAL, 1), bytes(stored))

    tamper(tmp_path, flip)
    store = LevelDbChainStore(tmp_path)
    with pytest.raises(CorruptionError, match="seal@1"):
        store.seal(1)
    store.close()


def test_value_moved_under_another_key_is_caught(tmp_path: Path) -> None:
    build_store(tmp_path, 3)
    tamper(tmp_path, lambda db: db.put(block_key(2), db.get(block_key(1))))
    store = LevelDbChainStore(tmp_path)
    with pytest.raises(CorruptionError, match="block@2"):
        store.block(2)
    store.close()


def test_corrupt_state_and_consensus_values_are_caught(tmp_path: Path) -> None:
    build_store(tmp_path, 2)
    state_key = next(iter(fake_commit(2).state_writes))

    def damage(db: plyvel.DB) -> None:
        db.put(keys.STATE + state_key, b"bad!bad!")
        db.put(keys.CONSENSUS + b"view", b"\x02" + db.get(keys.CONSENSUS + b"view")[1:])

    tamper(tmp_path, damage)
    store = LevelDbChainStore(tmp_path)
    with pytest.raises(CorruptionError, match="state"):
        store.state_get(state_key)
    with pytest.raises(CorruptionError, match="state"):
        list(store.state_scan(b"acct/", limit=100))
    with pytest.raises(CorruptionError, match="consensus"):
        store.consensus_load()
    store.close()


def test_truncated_value_shorter_than_checksum_is_caught(tmp_path: Path) -> None:
    build_store(tmp_path, 2)
    location_key = keys.TX_LOCATION + fake_commit(1).tx_hashes[0]
    tamper(tmp_path, lambda db: db.put(location_key, b"\x00\x01"))
    store = LevelDbChainStore(tmp_path)
    with pytest.raises(CorruptionError, match="tx_location"):
        store.tx_location(fake_commit(1).tx_hashes[0])
    store.close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda db: db.put(block_key(3), b"garbage"), "block@3"),
        (lambda db: db.delete(keys.height_key(keys.APP_HASH, 3)), "app_hash@3 is missing"),
        (lambda db: db.delete(keys.height_key(keys.SEAL, 3)), "seal@3 is missing"),
        (lambda db: db.delete(keys.HEIGHT_OF + fake_commit(3).block_hash), "indexed as missing"),
        (lambda db: db.put(keys.META_HEIGHT, b"\x00"), "meta\\[height\\]"),
        (lambda db: db.delete(keys.META_HEIGHT), "meta\\[height\\] is missing"),
        (lambda db: db.delete(keys.META_GENESIS), "no genesis"),
        (lambda db: db.delete(keys.height_key(keys.APP_HASH, 0)), "app_hash@0 is missing"),
        (lambda db: db.delete(keys.META_FORMAT), "no format version"),
    ],
)
def test_inconsistent_store_is_refused_on_open(
    tmp_path: Path, damage: Callable[[plyvel.DB], None], message: str
) -> None:
    build_store(tmp_path, 3)
    tamper(tmp_path, damage)
    with pytest.raises(CorruptionError, match=message):
        LevelDbChainStore(tmp_path)


def test_half_written_next_block_is_refused_on_open(tmp_path: Path) -> None:
    """A record of height 4 with the committed height still 3: the batch was not atomic."""
    build_store(tmp_path, 3)
    key = block_key(4)
    tamper(tmp_path, lambda db: db.put(key, seal_value(key, fake_commit(4).block)))
    with pytest.raises(CorruptionError, match="block@4 lies beyond committed height 3"):
        LevelDbChainStore(tmp_path)


def test_height_index_pointing_elsewhere_is_refused(tmp_path: Path) -> None:
    build_store(tmp_path, 3)
    key = keys.HEIGHT_OF + fake_commit(3).block_hash
    tamper(tmp_path, lambda db: db.put(key, seal_value(key, keys.encode_height(2))))
    with pytest.raises(CorruptionError, match="indexed as"):
        LevelDbChainStore(tmp_path)


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    build_store(tmp_path, 1)
    key = keys.META_FORMAT
    tamper(tmp_path, lambda db: db.put(key, seal_value(key, b"seoulchain-store/99")))
    with pytest.raises(StorageError, match="store/99"):
        LevelDbChainStore(tmp_path)


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(StorageError, match="not a directory"):
        LevelDbChainStore(tmp_path / "file")


def test_lost_current_file_is_refused_not_recreated(tmp_path: Path) -> None:
    build_store(tmp_path, 3)
    (tmp_path / "CURRENT").unlink()
    with pytest.raises(CorruptionError, match="CURRENT"):
        LevelDbChainStore(tmp_path)


def test_garbled_manifest_gives_a_clear_error(tmp_path: Path) -> None:
    build_store(tmp_path, 3)
    manifest = next(tmp_path.glob("MANIFEST-*"))
    data = bytearray(manifest.read_bytes())
    for position in range(0, len(data), 7):
        data[position] ^= 0x5A
    manifest.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"corrupt|cannot open"):
        LevelDbChainStore(tmp_path)


def newest_log(path: Path) -> Path:
    logs = sorted(path.glob("*.log"))
    assert logs, "LevelDB left no .log file: the test would check nothing"
    return logs[-1]


def test_garbled_log_gives_a_clear_error(tmp_path: Path) -> None:
    build_store(tmp_path, 5, tx_count=50)
    log_file = newest_log(tmp_path)
    data = bytearray(log_file.read_bytes())
    assert len(data) > 1000
    for position in range(len(data) // 2, len(data) // 2 + 64):
        data[position] ^= 0xFF
    log_file.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="corrupt"):
        LevelDbChainStore(tmp_path)


@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_log_opens_consistent_or_refuses(tmp_path: Path, keep_fraction: float) -> None:
    """A torn log tail may lose the newest blocks (LevelDB drops a torn final record), but
    what opens must be a consistent prefix of the chain: all of a block or none of it."""
    height = 8
    build_store(tmp_path, height, tx_count=40)
    log_file = newest_log(tmp_path)
    size = log_file.stat().st_size
    with log_file.open("r+b") as handle:
        handle.truncate(int(size * keep_fraction))
    try:
        store = LevelDbChainStore(tmp_path)
    except StorageError:
        return  # refusing with a clear error is allowed; crashing otherwise is not
    reached = store.committed_height()
    assert 0 <= reached <= height
    for block_height in range(1, reached + 1):
        assert_height_intact(store, fake_commit(block_height, tx_count=40))
    for block_height in range(reached + 1, height + 1):
        assert_height_absent(store, fake_commit(block_height, tx_count=40))
    store.close()


@pytest.mark.slow
def test_store_locked_by_another_process(tmp_path: Path) -> None:
    build_store(tmp_path, 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from storage.leveldb import LevelDbChainStore as S; "
            f"s = S({str(tmp_path)!r}); print('open', flush=True); sys.stdin.read(); s.close()",
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StorageError, match="locked by another process"):
            LevelDbChainStore(tmp_path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()
    assert holder.returncode == 0
    LevelDbChainStore(tmp_path).close()  # free once the other process let go


def test_bit_rot_in_a_table_file_is_caught(tmp_path: Path) -> None:
    """Damage inside an .ldb table (not the log): LevelDB's block CRC or ours catches it on
    open or on the first read that touches it; the store never returns altered bytes."""
    build_store(tmp_path, 6, tx_count=20)
    tamper(tmp_path, lambda db: db.compact_range())
    tables = sorted(tmp_path.glob("*.ldb"))
    assert tables, "compaction produced no table file: the test would check nothing"
    table = max(tables, key=lambda candidate: candidate.stat().st_size)
    data = bytearray(table.read_bytes())
    for position in range(100, min(len(data) // 2, 4000), 50):
        data[position] ^= 0x10
    table.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as raised:
        open_and_read_everything(tmp_path, height=6, tx_count=20)
    print(raised.value)  # shows which layer caught it, with -s


def open_and_read_everything(path: Path, *, height: int, tx_count: int) -> None:
    store = LevelDbChainStore(path)
    try:
        for block_height in range(1, height + 1):
            store.block(block_height)
            store.seal(block_height)
            for tx_hash in fake_commit(block_height, tx_count=tx_count).tx_hashes:
                store.tx_location(tx_hash)
        list(store.state_scan(b"", limit=1000))
        store.consensus_load()
    finally:
        store.close()
