"""The sealed channel that follows a handshake: ChaCha20-Poly1305 IETF, one key and one
96-bit counter nonce per direction, and the message records inside each sealed frame.

Why a counter nonce: both sides advance their counters in lockstep with the TCP byte stream,
so a replayed, reordered, dropped or truncated frame is opened under the wrong nonce and
fails authentication. The nonce never repeats under one key, because keys are fresh per
session (ephemeral X25519) and a counter that would wrap ends the session instead.

Plaintext of one frame is one or more records, packed back to back:

    channel u8 | length u32 big-endian | payload (length bytes)

Channel 0 is reserved for p2p control (keepalive pings); 1-255 belong to the node.
"""

from __future__ import annotations

import struct

from nacl._sodium import ffi, lib  # type: ignore[import-not-found]
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_ABYTES,
    crypto_aead_chacha20poly1305_ietf_KEYBYTES,
)

from p2p.errors import AuthenticationError, FrameError

MAC_BYTES: int = crypto_aead_chacha20poly1305_ietf_ABYTES
KEY_BYTES: int = crypto_aead_chacha20poly1305_ietf_KEYBYTES
NONCE_BYTES = 12
COUNTER_MAX = (1 << 64) - 1  # far beyond any session; a wrap would reuse a nonce

RECORD_HEADER = struct.Struct(">BI")
RECORD_HEADER_BYTES = RECORD_HEADER.size
CONTROL_CHANNEL = 0


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(NONCE_BYTES, "big")


class SecureSession:
    """Per-direction AEAD state. Not thread-safe; used only on the event loop."""

    __slots__ = ("_receive_counter", "_receive_key", "_send_counter", "_send_key")

    def __init__(self, *, send_key: bytes, receive_key: bytes) -> None:
        assert len(send_key) == KEY_BYTES
        assert len(receive_key) == KEY_BYTES
        assert send_key != receive_key, "one key per direction"
        self._send_key = send_key
        self._receive_key = receive_key
        self._send_counter = 0
        self._receive_counter = 0

    # Both directions call libsodium's ChaCha20-Poly1305 IETF functions directly (PyNaCl's
    # own binding module, `nacl._sodium`) instead of through `nacl.bindings`: the public
    # wrappers check and format five argument messages per call and copy the result out
    # of a zeroed cffi buffer, which cost ~3 us per frame and, for a 600 KB block, as much
    # again as the cipher. Here libsodium writes straight into a fresh bytearray. Same
    # algorithm, same bytes (tests/p2p/test_p2p_wire.py checks against the public API).

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate the next outgoing frame body."""
        return bytes(self.seal_buffer(plaintext))

    def seal_buffer(self, plaintext: bytes) -> bytearray:
        """`seal`, as a fresh bytearray, which a stream writes as it would bytes."""
        assert self._send_counter < COUNTER_MAX, "nonce space exhausted"
        nonce = _nonce(self._send_counter)
        self._send_counter += 1
        size = len(plaintext)
        sealed = bytearray(size + MAC_BYTES)
        status = lib.crypto_aead_chacha20poly1305_ietf_encrypt(
            ffi.from_buffer(sealed), ffi.NULL, plaintext, size, ffi.NULL, 0, ffi.NULL, nonce,
            self._send_key,
        )  # fmt: skip
        assert status == 0, "ChaCha20-Poly1305 encryption cannot fail"
        return sealed

    def open(self, ciphertext: bytes | bytearray) -> bytes:
        """Authenticate and decrypt the next incoming frame body, or raise."""
        return bytes(self.open_buffer(ciphertext))

    def open_buffer(self, ciphertext: bytes | bytearray) -> bytearray:
        """`open`, as a fresh bytearray: a frame's records are copied out of it anyway
        (`decode_records`), so the plaintext needs no bytes copy of its own."""
        size = len(ciphertext)
        if size < MAC_BYTES:
            raise AuthenticationError("sealed frame shorter than its MAC")
        if self._receive_counter >= COUNTER_MAX:
            raise AuthenticationError("receive nonce space exhausted")
        if not isinstance(ciphertext, bytes):
            ciphertext = bytes(ciphertext)
        nonce = _nonce(self._receive_counter)
        plaintext = bytearray(size - MAC_BYTES)
        status = lib.crypto_aead_chacha20poly1305_ietf_decrypt(
            ffi.from_buffer(plaintext), ffi.NULL, ffi.NULL, ciphertext, size, ffi.NULL, 0, nonce,
            self._receive_key,
        )  # fmt: skip
        if status != 0:
            raise AuthenticationError("frame failed authentication")
        self._receive_counter += 1
        return plaintext


def encode_records(records: list[tuple[int, bytes]]) -> bytes:
    """Pack (channel, payload) records into one frame plaintext."""
    parts: list[bytes] = []
    pack = RECORD_HEADER.pack
    for channel_id, payload in records:
        parts.append(pack(channel_id, len(payload)))
        parts.append(payload)
    return b"".join(parts)


def decode_records(plaintext: bytes | bytearray, *, records_max: int) -> list[tuple[int, bytes]]:
    """Split a frame plaintext into (channel, payload) records; each payload is bytes.

    Raises FrameError on a truncated record, an empty frame, or more than `records_max`
    records (the per-frame work bound). Size caps per channel are the caller's job.
    """
    if not plaintext:
        raise FrameError("empty frame")
    records: list[tuple[int, bytes]] = []
    unpack_from = RECORD_HEADER.unpack_from
    view = memoryview(plaintext)
    offset = 0
    total = len(plaintext)
    while offset < total:
        if total - offset < RECORD_HEADER_BYTES:
            raise FrameError("truncated record header")
        channel_id, length = unpack_from(plaintext, offset)
        start = offset + RECORD_HEADER_BYTES
        end = start + length
        if end > total:
            raise FrameError("record longer than its frame")
        records.append((channel_id, bytes(view[start:end])))
        if len(records) > records_max:
            raise FrameError(f"more than {records_max} records in one frame")
        offset = end
    return records
