"""Per-record checksums: every stored value is `payload || crc32(key || payload)`.

LevelDB checks its own blocks, but only when it reads them from a file, and not a value that
was written wrong or a file that was edited or restored from a bad backup. The CRC covers the
key too, so a value that ended up under another key fails as well. It detects accidents, not
attacks: forgery is what block hashes and seals are for (docs/STORAGE.md).
"""

from __future__ import annotations

import zlib

from storage import keys
from storage.interface import CorruptionError

CHECKSUM_BYTES = 4


def _crc(key: bytes, payload: bytes) -> bytes:
    return zlib.crc32(payload, zlib.crc32(key)).to_bytes(CHECKSUM_BYTES, "big")


def seal_value(key: bytes, payload: bytes) -> bytes:
    """The bytes to store under `key` for `payload`."""
    return payload + _crc(key, payload)


def open_value(key: bytes, stored: bytes) -> bytes:
    """The payload of a stored value; CorruptionError naming the key if it does not check out."""
    if len(stored) < CHECKSUM_BYTES:
        raise CorruptionError(
            f"record {keys.describe(key)} (key {key.hex()}) is {len(stored)} bytes, "
            f"shorter than its {CHECKSUM_BYTES}-byte checksum"
        )
    payload = stored[:-CHECKSUM_BYTES]
    if stored[-CHECKSUM_BYTES:] != _crc(key, payload):
        raise CorruptionError(f"checksum mismatch in record {keys.describe(key)} (key {key.hex()})")
    return payload
