"""The app hash formula, recomputed here from its documented bytes (docs/SERVICES.md)."""

from __future__ import annotations

import hashlib
import struct

from protocol.crypto import ZERO_HASH
from services import apphash


def _documented_writes_digest(writes: dict[bytes, bytes | None]) -> bytes:
    stream = b""
    for key in sorted(writes):
        value = writes[key]
        stream += struct.pack(">I", len(key)) + key
        if value is None:
            stream += b"\x00" + struct.pack(">I", 0)
        else:
            stream += b"\x01" + struct.pack(">I", len(value)) + value
    return hashlib.sha256(stream).digest()


def test_app_hash_matches_the_documented_bytes() -> None:
    writes: dict[bytes, bytes | None] = {b"zz": b"last", b"a": None, b"m": b""}
    prev = bytes(range(32))
    root = bytes(range(32, 64))
    expected = hashlib.sha256(
        b"seoulchain/app-hash/v1\n"
        + prev
        + struct.pack(">Q", 7)
        + root
        + _documented_writes_digest(writes)
    ).digest()
    assert apphash.app_hash(prev_app_hash=prev, height=7, results_root=root, writes=writes) == (
        expected
    )


def test_genesis_hash_is_height_zero_over_zero_prev_and_empty_results() -> None:
    writes: dict[bytes, bytes | None] = {b"agency/x": b"1"}
    expected = apphash.app_hash(
        prev_app_hash=ZERO_HASH,
        height=0,
        results_root=hashlib.sha256(b"").digest(),
        writes=writes,
    )
    assert apphash.genesis_app_hash(writes) == expected


def test_writes_digest_ignores_insertion_order_but_not_content() -> None:
    forward: dict[bytes, bytes | None] = {b"a": b"1", b"b": b"2"}
    backward: dict[bytes, bytes | None] = {b"b": b"2", b"a": b"1"}
    assert apphash.writes_digest(forward) == apphash.writes_digest(backward)
    # A delete and a put of the empty value are different writes.
    assert apphash.writes_digest({b"a": None}) != apphash.writes_digest({b"a": b""})
    # Length prefixes keep key/value boundaries unambiguous.
    assert apphash.writes_digest({b"ab": b"c"}) != apphash.writes_digest({b"a": b"bc"})


def _hash(
    *,
    prev: bytes = ZERO_HASH,
    height: int = 1,
    root: bytes = ZERO_HASH,
    writes: dict[bytes, bytes | None] | None = None,
) -> bytes:
    return apphash.app_hash(
        prev_app_hash=prev, height=height, results_root=root, writes=writes or {}
    )


def test_every_input_changes_the_hash() -> None:
    reference = _hash()
    variants = [
        _hash(prev=b"\x01" * 32),
        _hash(height=2),
        _hash(root=b"\x01" * 32),
        _hash(writes={b"k": b"v"}),
    ]
    assert all(variant != reference for variant in variants)
    assert len(set(variants)) == len(variants)
