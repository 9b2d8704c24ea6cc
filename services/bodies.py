"""Body decoding shared by every tx kind: strict msgspec decode, plus a refusal of maps that
repeat a key.

msgspec keeps the last of repeated keys; other MessagePack libraries may keep the first.
A body whose meaning depends on the reader's library could show an auditor a different
revocation reason than the one the chain recorded, so a repeated key anywhere in a body's
maps makes it BODY_INVALID. The check runs only after the typed decode succeeded, so it
sees well-formed msgpack of a bounded shape.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from protocol.results import TxResult
from services.codes import Code

# Nested maps deeper than this are not checked; no body type nests maps this deep.
_MAP_DEPTH_MAX = 4
_RAW_MAP_DECODER = msgspec.msgpack.Decoder(dict[Any, msgspec.Raw])
_RAW_ARRAY_DECODER = msgspec.msgpack.Decoder(list[msgspec.Raw])
# Bodies whose repeated-key verdict is remembered: above the mempool's 20,000 txs, so the
# verdict from admission is still known when the tx executes.
BODIES_CHECKED_CACHED = 32_768
BODY_BYTES_CACHED_MAX = 512  # larger bodies are walked each time: <= 16 MiB of cached keys


def decode_body(
    decoder: msgspec.msgpack.Decoder[Any], raw: bytes, *, detailed: bool
) -> msgspec.Struct | TxResult:
    """The typed body, or the result refusing it. `detailed` adds the decoder's message,
    for check_tx only: block result logs must not depend on a library's wording."""
    try:
        body: msgspec.Struct = decoder.decode(raw)
    except msgspec.ValidationError as error:
        detail = f": {error}" if detailed else ""
        return TxResult(code=Code.BODY_INVALID, log=f"body fields are invalid{detail}")
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        # msgspec lets UnicodeDecodeError escape for a map key that is not UTF-8.
        detail = f": {error}" if detailed else ""
        return TxResult(code=Code.BODY_MALFORMED, log=f"body is not msgpack{detail}")
    repeats = (
        _body_repeats_a_key(raw) if len(raw) <= BODY_BYTES_CACHED_MAX else has_repeated_key(raw)
    )
    if repeats:
        return TxResult(code=Code.BODY_INVALID, log="body repeats a map key")
    return body


@functools.lru_cache(maxsize=BODIES_CHECKED_CACHED)
def _body_repeats_a_key(raw: bytes) -> bool:
    """`has_repeated_key` remembered per body: check_tx and the tx's execution (and the
    execution on every node of an in-process cluster) would otherwise walk the same maps."""
    return has_repeated_key(raw)


def _map_entries(raw: bytes | memoryview) -> int | None:
    """The entry count in a msgpack map header, or None if `raw` is not a map."""
    first = raw[0]
    if 0x80 <= first <= 0x8F:
        return first & 0x0F
    if first == 0xDE and len(raw) >= 3:
        return int.from_bytes(raw[1:3], "big")
    if first == 0xDF and len(raw) >= 5:
        return int.from_bytes(raw[1:5], "big")
    return None


def _is_array(raw: bytes | memoryview) -> bool:
    return 0x90 <= raw[0] <= 0x9F or raw[0] in (0xDC, 0xDD)


def has_repeated_key(raw: bytes | memoryview, *, depth: int = 0) -> bool:
    """True if any map in this msgpack value (inside maps and arrays, up to a depth)
    repeats a key."""
    if not raw or depth >= _MAP_DEPTH_MAX:
        return False
    values: list[msgspec.Raw]
    try:
        if (entries := _map_entries(raw)) is not None:
            decoded = _RAW_MAP_DECODER.decode(raw)
            if len(decoded) != entries:
                return True
            values = list(decoded.values())
        elif _is_array(raw):
            values = _RAW_ARRAY_DECODER.decode(raw)
        else:
            return False
    except (msgspec.DecodeError, TypeError, UnicodeDecodeError):
        return False  # not decodable this way: the typed decode already judged its shape
    return any(has_repeated_key(memoryview(value), depth=depth + 1) for value in values)
