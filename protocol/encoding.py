"""Canonical binary encoding: fixed-width big-endian integers and length-prefixed bytes.

Every signed or hashed object has exactly one encoding. The decoder is strict: it rejects
truncation, trailing bytes, over-long length prefixes and out-of-range values, always with
`DecodeError` (never IndexError, struct.error or UnicodeDecodeError), so bytes from a peer,
an RPC client or a file on disk can be decoded without any other exception escaping.
"""

from __future__ import annotations

import struct

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

U64_MAX = (1 << 64) - 1
# A tuple, not `bytes | bytearray | memoryview`: that union is rebuilt on every call, and a
# Reader is made for every tx of every block.
_BYTES_LIKE = (bytes, bytearray, memoryview)


class DecodeError(ValueError):
    """Bytes that are not a canonical encoding of the expected object."""


class Writer:
    """Appends canonical fields to a buffer. Callers pass already-validated values;
    a value out of range is a programming error and raises struct.error / AssertionError."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def fixed(self, value: bytes, size: int) -> Writer:
        assert len(value) == size, f"fixed field is {len(value)} bytes, want {size}"
        self._parts.append(value)
        return self

    def bytes8(self, value: bytes) -> Writer:
        """Bytes with a 1-byte length prefix (at most 255 bytes)."""
        self._parts.append(_U8.pack(len(value)))
        self._parts.append(value)
        return self

    def bytes32(self, value: bytes) -> Writer:
        """Bytes with a 4-byte length prefix."""
        self._parts.append(_U32.pack(len(value)))
        self._parts.append(value)
        return self

    def raw(self, value: bytes) -> Writer:
        self._parts.append(value)
        return self

    def finish(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads canonical fields; every failure is a DecodeError naming the field."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, _BYTES_LIKE):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._offset = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def _take(self, size: int, field: str) -> bytes:
        end = self._offset + size
        if size < 0 or end > len(self._data):
            raise DecodeError(f"truncated at {field}: need {size} bytes, have {self.remaining}")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u8(self, field: str) -> int:
        return int(_U8.unpack(self._take(1, field))[0])

    def u16(self, field: str) -> int:
        return int(_U16.unpack(self._take(2, field))[0])

    def u32(self, field: str) -> int:
        return int(_U32.unpack(self._take(4, field))[0])

    def u64(self, field: str) -> int:
        return int(_U64.unpack(self._take(8, field))[0])

    def fixed(self, size: int, field: str) -> bytes:
        return self._take(size, field)

    def bytes8(self, field: str, *, max_bytes: int = 255) -> bytes:
        size = self.u8(field + ".length")
        if size > max_bytes:
            raise DecodeError(f"{field} is {size} bytes, max {max_bytes}")
        return self._take(size, field)

    def bytes32(self, field: str, *, max_bytes: int) -> bytes:
        size = self.u32(field + ".length")
        if size > max_bytes:
            raise DecodeError(f"{field} is {size} bytes, max {max_bytes}")
        return self._take(size, field)

    def ascii8(self, field: str, *, max_bytes: int = 255) -> str:
        raw = self.bytes8(field, max_bytes=max_bytes)
        if not raw.isascii():
            raise DecodeError(f"{field} is not ASCII")
        return raw.decode("ascii")

    def finish(self, what: str) -> None:
        if self.remaining:
            raise DecodeError(f"{self.remaining} trailing bytes after {what}")
