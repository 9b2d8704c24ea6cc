"""Per-tx execution results and the block's results root.

Result layout: u32 code | bytes16 log (UTF-8, <= 1 KiB) | bytes32 data (<= 1 KiB).
code 0 is success; other codes are listed in docs/SERVICES.md. results_root is the
RFC 6962 Merkle root over SHA-256 of each encoded result, in tx order, and is attested by
the header `pipeline_depth` heights later (protocol/block.py).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field, fields

from protocol import limits, merkle
from protocol.crypto import sha256
from protocol.encoding import DecodeError, Reader

U32_MAX = (1 << 32) - 1
# code, log (u16-prefixed), data (u32-prefixed), each payload at most results_data_bytes_max
RESULT_BYTES_MAX = 4 + 2 + 4 + 2 * limits.results_data_bytes_max
RESULTS_BYTES_MAX = 4 + limits.block_txs_max * RESULT_BYTES_MAX

CODE_OK = 0
_CODE_AND_LOG_SIZE = struct.Struct(">IH")
_DATA_SIZE = struct.Struct(">I")


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class TxResult:
    code: int
    log: str = ""
    data: bytes = b""
    # Memoised canonical bytes (a result is immutable): the app hashes every result for the
    # results root and the executor then encodes the same list for the store. Derived data
    # only: never compared, never shown.
    _encoded: bytes | None = field(default=None, compare=False, repr=False)

    def __init__(self, *, code: int, log: str = "", data: bytes = b"") -> None:
        """What the generated __init__ of a frozen dataclass does (one object.__setattr__
        per field, ~1 us), through the slots' own setters (~0.2 us): every executed tx
        builds a result."""
        _set_code(self, code)
        _set_log(self, log)
        _set_data(self, data)
        _set_encoded(self, None)

    @property
    def ok(self) -> bool:
        return self.code == CODE_OK

    def encode(self) -> bytes:
        """Canonical bytes. A log or data over the limit is cut to it (results are kept
        per tx in every block, so they are bounded); the log is cut on a character
        boundary so that the bytes always decode.

        Layout u32 code | u16 log length | log | u32 data length | data, packed directly
        (a Writer per result cost more than the rest of the encoding)."""
        encoded = self._encoded
        if encoded is None:
            data = self.data[: limits.results_data_bytes_max]
            encoded = _code_and_log(self.code, self.log) + _DATA_SIZE.pack(len(data)) + data
            _set_encoded(self, encoded)
        return encoded

    def hash(self) -> bytes:
        return sha256(self.encode())


_RESULT_FIELD_NAMES = ("code", "log", "data", "_encoded")
assert tuple(f.name for f in fields(TxResult)) == _RESULT_FIELD_NAMES, "TxResult fields changed"
_set_code, _set_log, _set_data, _set_encoded = (
    getattr(TxResult, name).__set__ for name in _RESULT_FIELD_NAMES
)


# Encoded (code, log) heads remembered: a block's results repeat a few fixed logs
# ("anchored", "signer and nonce already executed"), and encoding the log and packing the
# head cost more than the rest of a result's encoding. Keyed by value (Code.OK and 0 share
# an entry: they pack alike); check_tx's detailed logs, which vary, just age out.
RESULT_HEADS_CACHED = 256


@functools.lru_cache(maxsize=RESULT_HEADS_CACHED)
def _code_and_log(code: int, log: str) -> bytes:
    """u32 code | u16 log length | log, the log cut to the limit on a character boundary."""
    assert 0 <= code <= U32_MAX, f"result code {code} does not fit in u32"
    log_bytes = _utf8_prefix(log, limits.results_data_bytes_max)
    return _CODE_AND_LOG_SIZE.pack(code, len(log_bytes)) + log_bytes


def _utf8_prefix(text: str, bytes_max: int) -> bytes:
    """The longest UTF-8 encoding of a prefix of `text` that fits in `bytes_max` bytes.
    Lone surrogates (not encodable in UTF-8) become "?", so encoding never raises."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= bytes_max:
        return encoded
    cut = bytes_max
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:
        cut -= 1  # encoded[cut] continues a character: step back to where it starts
    return encoded[:cut]


def decode_result(reader: Reader) -> TxResult:
    code = reader.u32("code")
    log_size = reader.u16("log.length")
    if log_size > limits.results_data_bytes_max:
        raise DecodeError("result log too long")
    try:
        log = reader.fixed(log_size, "log").decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("result log is not UTF-8") from None
    data = reader.bytes32("data", max_bytes=limits.results_data_bytes_max)
    return TxResult(code=code, log=log, data=data)


def encode_results(results: list[TxResult] | tuple[TxResult, ...]) -> bytes:
    parts = [_DATA_SIZE.pack(len(results))]
    parts.extend(result.encode() for result in results)
    return b"".join(parts)


def decode_results(data: bytes) -> tuple[TxResult, ...]:
    """Strict decode of a block's result list (u32 count, then each result)."""
    if len(data) > RESULTS_BYTES_MAX:
        raise DecodeError(f"results are {len(data)} bytes, max {RESULTS_BYTES_MAX}")
    reader = Reader(data)
    count = reader.u32("count")
    if count > limits.block_txs_max:
        raise DecodeError(f"{count} results, max {limits.block_txs_max}")
    results = tuple(decode_result(reader) for _ in range(count))
    reader.finish("results")
    return results


def results_root(results: list[TxResult] | tuple[TxResult, ...]) -> bytes:
    return merkle.root([sha256(result.encode()) for result in results])
