"""Length-prefixed framing: a u32 big-endian length, then that many bytes.

The cap is checked on the 4-byte prefix, before a single byte of the body is read or
allocated (RELIABILITY R2: a prefix of 2**31 must cost nothing). Two readers share the rule:

- `FrameDecoder`, a pure ("sans-IO") decoder fed arbitrary chunks; tests and fuzzers use it
  without sockets.
- `read_frame`, the hot-path reader over an `asyncio.StreamReader`, which uses
  `readexactly` twice per frame, with a deadline for both reads or none (the caller's).
"""

from __future__ import annotations

import asyncio
import logging
import struct

from p2p.errors import FrameError, FrameTooLarge, FrameTruncated, PeerClosed, PeerTimeout

log = logging.getLogger(__name__)

LENGTH_PREFIX = struct.Struct(">I")
LENGTH_PREFIX_BYTES = LENGTH_PREFIX.size


def encode_frame(body: bytes) -> bytes:
    """Prefix `body` with its length. The caller keeps bodies under the peer's cap."""
    return LENGTH_PREFIX.pack(len(body)) + body


def check_length(length: int, frame_bytes_max: int) -> None:
    """Refuse a declared length above the cap (shared by both readers)."""
    if length > frame_bytes_max:
        raise FrameTooLarge(f"frame of {length} bytes exceeds cap {frame_bytes_max}")


class FrameDecoder:
    """Pure incremental decoder. `feed` returns the complete frames in order.

    Memory is bounded: the buffer never holds more than one partial frame, and a partial
    frame is at most `frame_bytes_max` plus the 4-byte prefix, because an oversized prefix
    raises as soon as its 4 bytes are present.
    """

    def __init__(self, *, frame_bytes_max: int, frames_per_feed_max: int = 10_000) -> None:
        assert frame_bytes_max > 0
        self._frame_bytes_max = frame_bytes_max
        self._frames_per_feed_max = frames_per_feed_max
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append `data` and return every frame now complete.

        Raises FrameTooLarge on an oversized prefix, FrameError if one chunk completes more
        than `frames_per_feed_max` frames (a bound on work per call).
        """
        self._buffer += data
        frames: list[bytes] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= LENGTH_PREFIX_BYTES:
            (length,) = LENGTH_PREFIX.unpack_from(buffer, offset)
            check_length(length, self._frame_bytes_max)
            end = offset + LENGTH_PREFIX_BYTES + length
            if end > len(buffer):
                break
            frames.append(bytes(buffer[offset + LENGTH_PREFIX_BYTES : end]))
            offset = end
            if len(frames) > self._frames_per_feed_max:
                raise FrameError("too many frames in one chunk")
        del buffer[:offset]
        return frames

    def eof(self) -> None:
        """The stream ended: a partial frame left over is a truncation."""
        if self._buffer:
            raise FrameTruncated(f"stream ended with {len(self._buffer)} bytes of a frame")


async def read_frame(
    reader: asyncio.StreamReader, *, frame_bytes_max: int, timeout_s: float | None
) -> bytes:
    """Read one frame; the cap is checked before the body is read. With `timeout_s`, the
    whole frame must arrive within it; None leaves deadlines to the caller (a peer keeps
    one idle deadline for the connection instead of arming a timer per frame).

    Raises FrameTooLarge, FrameTruncated (EOF mid-frame), PeerClosed (EOF between frames),
    PeerTimeout.
    """
    if timeout_s is None:
        return await _read_frame(reader, frame_bytes_max)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_frame(reader, frame_bytes_max)
    except TimeoutError:
        raise PeerTimeout(f"no frame within {timeout_s}s") from None


async def _read_frame(reader: asyncio.StreamReader, frame_bytes_max: int) -> bytes:
    try:
        prefix = await reader.readexactly(LENGTH_PREFIX_BYTES)
        (length,) = LENGTH_PREFIX.unpack(prefix)
        check_length(length, frame_bytes_max)
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial and exc.expected == LENGTH_PREFIX_BYTES:
            raise PeerClosed("peer closed the connection") from None
        raise FrameTruncated(
            f"stream ended after {len(exc.partial)} of {exc.expected} bytes"
        ) from None
