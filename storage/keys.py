"""The LevelDB key layout: one single-byte namespace per kind of record (docs/STORAGE.md).

Heights are 8-byte big-endian so that LevelDB's bytewise order is height order, which makes
range scans and "is anything beyond the committed height?" checks cheap. Namespaces are
printable ASCII so that a raw dump of the store is readable.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

BLOCK = b"b"  # height -> encoded block
SEAL = b"s"  # height -> encoded seal
RESULTS = b"r"  # height -> encoded results
APP_HASH = b"a"  # height -> app hash after executing it (height 0: genesis app hash)
RESULTS_ROOT = b"o"  # height -> results root
BLOCK_HASH = b"h"  # height -> block hash
HEIGHT_OF = b"H"  # block hash -> height (8 bytes)
TX_LOCATION = b"t"  # tx hash -> height (8 bytes) + index in block (4 bytes)
STATE = b"v"  # service state key -> value
CONSENSUS = b"c"  # consensus durable-state key -> value
META = b"m"  # store metadata, below

META_FORMAT = META + b"format"  # FORMAT_VERSION, written when the store is created
META_HEIGHT = META + b"height"  # committed height, 8 bytes; moves only inside commit_block
META_GENESIS = META + b"genesis"  # genesis hash, written once by set_genesis

FORMAT_VERSION = b"seoulchain-store/1"

HEIGHT_BYTES = 8
TX_INDEX_BYTES = 4
height_max = (1 << 63) - 1  # signed range, so heights stay valid in every language's int64
tx_index_max = (1 << 32) - 1

_HEIGHT = struct.Struct(">Q")
_LOCATION = struct.Struct(">QI")
_INDEX = struct.Struct(">I")

# Namespaces keyed by height: every committed height has exactly one record in each.
PER_HEIGHT_NAMESPACES = (BLOCK, SEAL, RESULTS, APP_HASH, RESULTS_ROOT, BLOCK_HASH)


def encode_height(height: int) -> bytes:
    assert 0 <= height <= height_max, height
    return _HEIGHT.pack(height)


def decode_height(raw: bytes) -> int:
    """Raises ValueError on a wrong length; callers turn that into CorruptionError."""
    if len(raw) != HEIGHT_BYTES:
        raise ValueError(f"height record is {len(raw)} bytes, expected {HEIGHT_BYTES}")
    return int(_HEIGHT.unpack(raw)[0])


def height_key(namespace: bytes, height: int) -> bytes:
    assert namespace in PER_HEIGHT_NAMESPACES, namespace
    return namespace + _HEIGHT.pack(height)


def encode_location(height: int, index: int) -> bytes:
    assert 0 <= index <= tx_index_max, index
    return _LOCATION.pack(height, index)


def location_packer(height: int) -> Callable[[int], bytes]:
    """encode_location for one height, as a fast callable: the tx index of a block packs
    one location per tx. The height part is packed once; the index is checked in range."""
    assert 0 <= height <= height_max, height
    height_bytes = _HEIGHT.pack(height)
    pack_index = _INDEX.pack

    def pack(index: int) -> bytes:
        return height_bytes + pack_index(index)  # struct.error if the index is out of u32

    return pack


def decode_location(raw: bytes) -> tuple[int, int]:
    if len(raw) != _LOCATION.size:
        raise ValueError(f"tx location is {len(raw)} bytes, expected {_LOCATION.size}")
    height, index = _LOCATION.unpack(raw)
    return int(height), int(index)


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix`; None if unbounded."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def describe(key: bytes) -> str:
    """A readable name for a raw key, used in error messages and the inspector."""
    names = {
        BLOCK: "block",
        SEAL: "seal",
        RESULTS: "results",
        APP_HASH: "app_hash",
        RESULTS_ROOT: "results_root",
        BLOCK_HASH: "block_hash",
    }
    namespace, rest = key[:1], key[1:]
    if namespace in names and len(rest) == HEIGHT_BYTES:
        return f"{names[namespace]}@{decode_height(rest)}"
    if namespace == HEIGHT_OF:
        return f"height_of[{rest.hex()}]"
    if namespace == TX_LOCATION:
        return f"tx_location[{rest.hex()}]"
    if namespace == STATE:
        return f"state[{rest!r}]"
    if namespace == CONSENSUS:
        return f"consensus[{rest!r}]"
    if namespace == META:
        return f"meta[{rest.decode('ascii', 'replace')}]"
    return f"unknown[{key!r}]"
