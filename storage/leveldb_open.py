"""Opening a LevelDB chain store: turn LevelDB's failures into clear errors, then check that
what is on disk is one consistent store before anyone reads from it.

Why so careful: a store truncated by a power cut or a bad backup restore must stop the node
with a message an operator can act on (RELIABILITY.md D2, merkleeyes#38), never run on
half-present data and never die with a bare traceback.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import plyvel

from storage import keys
from storage.checksum import open_value, seal_value
from storage.interface import CorruptionError, StorageError

log = logging.getLogger(__name__)

# Memtable size, drawn per open from this range. Validators commit the same blocks, so with
# one fixed size they all flush the memtable (and start the compaction that follows) at the
# same moment, every ~8 s at 1,650 tx/s: on a shared host every node stalled ~0.3 s at once
# and p99 commit latency rose from ~95 ms to ~260 ms (BENCHMARKS.md). Staggered sizes put
# the flushes at different moments, and a quorum does not wait for one flushing node. Even
# the smallest holds a block of 10,000 txs several times over.
write_buffer_bytes_min = 8 * 1024 * 1024
write_buffer_bytes_max = 32 * 1024 * 1024
max_open_files = 256  # stay well under the node's file-descriptor limit
bloom_filter_bits = 10  # per key: ~1% false positives
# Table blocks are written uncompressed. Most bytes are blocks of signed txs and tx-index
# records (signatures, hashes: incompressible), so Snappy spent ~1.3 us of CPU per
# committed tx in flushes and compactions for almost no space (scripts/perf/block_path.py
# and BENCHMARKS.md). The records themselves (keys, values, checksums) are unchanged, and
# LevelDB flags compression per table block, so stores written with Snappy still read.
compression: str | None = None


def open_leveldb(path: Path) -> Any:
    """A plyvel.DB with paranoid checks; StorageError/CorruptionError instead of plyvel's."""
    if path.exists() and not path.is_dir():
        raise StorageError(f"chain store path {path} exists and is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh home has no data/ yet
    has_current = (path / "CURRENT").is_file()
    if path.is_dir() and not has_current and any(path.iterdir()):
        # LevelDB would happily create a fresh database over the leftovers and replay stray
        # logs into it: a silently partial store. Refuse instead.
        raise CorruptionError(
            f"{path} holds files but no LevelDB CURRENT file: not a store, or its "
            f"CURRENT/MANIFEST was lost; restore it or remove the directory and re-sync"
        )
    try:
        return plyvel.DB(
            str(path),
            create_if_missing=not has_current,
            paranoid_checks=True,
            write_buffer_size=random.randint(write_buffer_bytes_min, write_buffer_bytes_max),
            max_open_files=max_open_files,
            # Most state reads of a tx are misses (its replay key, a new document's key):
            # a Bloom filter answers those without reading a table block. Filters only
            # skip reads; every value read is still checksummed.
            bloom_filter_bits=bloom_filter_bits,
            compression=compression,
        )
    except plyvel.CorruptionError as error:
        raise CorruptionError(f"LevelDB store {path} is corrupt: {error_text(error)}") from error
    except plyvel.IOError as error:
        text = error_text(error)
        if "lock" in text.lower():
            raise StorageError(
                f"chain store {path} is locked by another process (or already open in this "
                f"one): {text}"
            ) from error
        raise StorageError(f"cannot open chain store {path}: {text}") from error
    except plyvel.Error as error:
        raise StorageError(f"cannot open chain store {path}: {error_text(error)}") from error


def check_consistency(db: Any, path: Path) -> tuple[int, bytes | None]:
    """(committed height, genesis hash) of a consistent store; CorruptionError otherwise.

    A brand-new, empty database gets its format version and height 0 here.
    """
    try:
        return _check(db, path)
    except plyvel.CorruptionError as error:
        raise CorruptionError(f"LevelDB store {path} is corrupt: {error_text(error)}") from error
    except plyvel.Error as error:
        raise StorageError(f"cannot read chain store {path}: {error_text(error)}") from error


def _check(db: Any, path: Path) -> tuple[int, bytes | None]:
    version = _read(db, keys.META_FORMAT)
    if version is None:
        _initialise_empty(db, path)
        return 0, None
    if version != keys.FORMAT_VERSION:
        raise StorageError(
            f"{path} has store format {version!r}; this build reads {keys.FORMAT_VERSION!r}"
        )
    height_raw = _require(db, keys.META_HEIGHT, path)
    try:
        height = keys.decode_height(height_raw)
    except ValueError as error:
        raise CorruptionError(f"{path}: bad committed height record: {error}") from error
    genesis = _read(db, keys.META_GENESIS)
    if genesis is not None:
        _require(db, keys.height_key(keys.APP_HASH, 0), path)
    elif height > 0:
        raise CorruptionError(f"{path}: committed height {height} but no genesis recorded")
    if height > 0:
        _check_height(db, path, height)
    _check_nothing_beyond(db, path, height)
    return height, genesis


def _initialise_empty(db: Any, path: Path) -> None:
    with db.iterator(include_value=False) as iterator:
        for key in iterator:
            raise CorruptionError(
                f"{path} has records (first {keys.describe(key)}) but no format version: "
                f"half-written or not a seoulchain store"
            )
    batch = db.write_batch(sync=True)
    batch.put(keys.META_FORMAT, seal_value(keys.META_FORMAT, keys.FORMAT_VERSION))
    batch.put(keys.META_HEIGHT, seal_value(keys.META_HEIGHT, keys.encode_height(0)))
    batch.write()
    log.info("created chain store %s", path)


def _check_height(db: Any, path: Path, height: int) -> None:
    """The committed height's records all exist, verify, and agree with the hash index."""
    for namespace in keys.PER_HEIGHT_NAMESPACES:
        _require(db, keys.height_key(namespace, height), path)
    block_hash = _require(db, keys.height_key(keys.BLOCK_HASH, height), path)
    indexed = _read(db, keys.HEIGHT_OF + block_hash)
    if indexed != keys.encode_height(height):
        raise CorruptionError(
            f"{path}: block hash {block_hash.hex()} of committed height {height} is indexed "
            f"as {indexed.hex() if indexed is not None else 'missing'}"
        )


def _check_nothing_beyond(db: Any, path: Path, height: int) -> None:
    """No per-height record above the committed height: a batch is all or nothing, so one
    there means the metadata and the data disagree."""
    if height >= keys.height_max:
        return
    for namespace in keys.PER_HEIGHT_NAMESPACES:
        start = keys.height_key(namespace, height + 1)
        with db.iterator(start=start, include_value=False) as iterator:
            for key in iterator:
                if key.startswith(namespace):
                    raise CorruptionError(
                        f"{path}: record {keys.describe(key)} lies beyond committed height {height}"
                    )
                break


def _read(db: Any, key: bytes) -> bytes | None:
    stored = db.get(key, verify_checksums=True)
    return None if stored is None else open_value(key, stored)


def _require(db: Any, key: bytes, path: Path) -> bytes:
    value = _read(db, key)
    if value is None:
        raise CorruptionError(f"{path}: record {keys.describe(key)} is missing")
    return value


def error_text(error: Exception) -> str:
    """plyvel puts bytes in its exception arguments; show them as text."""
    if error.args and isinstance(error.args[0], bytes):
        return error.args[0].decode("utf-8", "replace")
    return str(error)
