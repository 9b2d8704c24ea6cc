"""Body decoding shared by every tx kind: strict msgspec decode, plus a refusal of maps that
repeat a key.

msgspec keeps the last of repeated keys; other MessagePack libraries may keep the first.
A body whose meaning depends on the reader's library could show an auditor a different
revocation reason than the one the chain recorded, so a repeated key anywhere in a body's
maps makes it BODY_INVALID. The check runs only after the typed decode succeeded, so it
sees well-formed msgpack of a bounded shape. (msgspec's strict typed decode does not refuse
repeated keys, neither of a Struct's fields nor of a dict: tests/services pins that.)

Fast path: almost every body is the canonical encoding of its decoded value, i.e. encoding
the typed body again gives back exactly `raw`. msgspec never encodes a map with a repeated
key (a Struct's fields are distinct, a dict's keys are distinct), so such a body repeats no
key anywhere, and the walk (several microseconds) is skipped. Any other body, canonical or
not, is walked as before: the verdict is the same either way, only its cost differs.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import msgspec

from protocol.results import TxResult
from services.codes import Code

# Nested maps deeper than this are not checked; no body type nests maps this deep.
_MAP_DEPTH_MAX = 4
_RAW_MAP_DECODER = msgspec.msgpack.Decoder(dict[Any, msgspec.Raw])
_RAW_ARRAY_DECODER = msgspec.msgpack.Decoder(list[msgspec.Raw])
# Encodes any body Struct by its own type's settings (field order, omit_defaults, tags).
_BODY_ENCODER = msgspec.msgpack.Encoder()
# Bodies whose repeated-key verdict is remembered: above the mempool's 20,000 txs, so the
# verdict from admission is still known when the tx executes.
BODIES_CHECKED_CACHED = 32_768
BODY_BYTES_CACHED_MAX = 512  # larger bodies are walked each time: <= 16 MiB of cached keys
# Canonical bodies remembered decoded (see decode_body), at most 512 bytes each as above:
# <= 16 MiB of keys plus their decoded values (a few times that at worst).
BODIES_DECODED_CACHED = 32_768
# (body type, raw) -> the decoded body, oldest first. Written by admission only, read by
# admission and execution (two threads): a lookup is one atomic dict read under the GIL,
# insertions and evictions take the lock.
_decoded: OrderedDict[tuple[Any, bytes], msgspec.Struct] = OrderedDict()
_decoded_lock = threading.Lock()


def decode_body(
    decoder: msgspec.msgpack.Decoder[Any], raw: bytes, *, detailed: bool
) -> msgspec.Struct | TxResult:
    """The typed body, or the result refusing it. `detailed` (check_tx) adds the decoder's
    message: block result logs must not depend on a library's wording.

    Canonical bodies decoded by check_tx are remembered, because the tx's execution decodes
    the same bytes again and the typed decode, with its pattern checks, costs more than the
    rest of routing. Safe: the key is the exact bytes and the body type, decoding is a pure
    function of them, and a remembered body is encoded again and compared with `raw` before
    it is handed out, which proves the shared object still holds exactly what `raw` says
    even if some caller had mutated a list or dict inside it (none does). Execution does
    not remember what it decodes: it is a body's last decode (a backup's execution, whose
    txs never went through check_tx, would only fill the cache with dead entries)."""
    cacheable = len(raw) <= BODY_BYTES_CACHED_MAX and type(raw) is bytes
    if cacheable:
        known = _decoded.get((decoder.type, raw))
        if known is not None and _BODY_ENCODER.encode(known) == raw:
            return known
    try:
        body: msgspec.Struct = decoder.decode(raw)
    except msgspec.ValidationError as error:
        detail = f": {error}" if detailed else ""
        return TxResult(code=Code.BODY_INVALID, log=f"body fields are invalid{detail}")
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        # msgspec lets UnicodeDecodeError escape for a map key that is not UTF-8.
        detail = f": {error}" if detailed else ""
        return TxResult(code=Code.BODY_MALFORMED, log=f"body is not msgpack{detail}")
    if _BODY_ENCODER.encode(body) == raw:
        if cacheable and detailed:
            _remember(decoder.type, raw, body)
        return body  # canonical, hence no repeated key (module docstring)
    repeats = (
        _body_repeats_a_key(raw) if len(raw) <= BODY_BYTES_CACHED_MAX else has_repeated_key(raw)
    )
    if repeats:
        return TxResult(code=Code.BODY_INVALID, log="body repeats a map key")
    return body


def _remember(body_type: Any, raw: bytes, body: msgspec.Struct) -> None:
    with _decoded_lock:
        _decoded[(body_type, raw)] = body
        if len(_decoded) > BODIES_DECODED_CACHED:
            _decoded.popitem(last=False)


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
