"""Authenticated key exchange, in the spirit of CometBFT's SecretConnection, simplified.

Theory of operation (docs/P2P.md has the bytes):

1. Each side sends HELLO = magic "SCP2" | version u16 | ephemeral X25519 public key (32).
2. Both compute the X25519 shared secret (an all-zero result, from a low-order point, is
   refused) and the transcript hash
       SHA-256("seoulchain/p2p-transcript/v1\n" | version u16 | len u16 | chain_id |
               lower ephemeral key | higher ephemeral key)
   so both sides hash the same bytes whatever the dial direction.
3. HKDF-SHA256(ikm=shared secret, salt=transcript, info="seoulchain/p2p-keys/v1") gives 64
   bytes: the first 32 key the direction lower-ephemeral -> higher-ephemeral, the next 32 the
   other direction.
4. Each side sends AUTH, sealed as frame 0 of its direction: its Ed25519 static public key
   and a signature over "seoulchain/p2p-handshake/v1\n" | transcript.
5. Each side checks the signature, that the key is allowed (genesis validators plus
   configured peers), and that it is not its own key, BEFORE any application frame is read.

`Handshake` is pure (no I/O, so fuzzers can feed it bytes); `run_handshake` drives it over a
stream with one overall deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from p2p.errors import HandshakeError, PeerTimeout
from p2p.framing import encode_frame, read_frame
from p2p.secure import KEY_BYTES, SecureSession

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAGIC = b"SCP2"
HANDSHAKE_DOMAIN = b"seoulchain/p2p-handshake/v1\n"
TRANSCRIPT_DOMAIN = b"seoulchain/p2p-transcript/v1\n"
KEY_SCHEDULE_INFO = b"seoulchain/p2p-keys/v1"
HELLO = struct.Struct(">4sH32s")
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
AUTH_PLAINTEXT_BYTES = PUBLIC_KEY_BYTES + SIGNATURE_BYTES
HANDSHAKE_FRAME_BYTES_MAX = 256  # HELLO is 38 bytes, sealed AUTH 112
CHAIN_ID_BYTES_MAX = 255


def hkdf_sha256(*, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with HMAC-SHA256 (stdlib only)."""
    assert 0 < length <= 255 * 32
    prk = hmac.digest(salt, ikm, "sha256")
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        output += block
        counter += 1
    return output[:length]


def transcript_hash(*, chain_id: bytes, ephemeral_a: bytes, ephemeral_b: bytes) -> bytes:
    """Hash binding chain, version and both ephemeral keys in canonical (sorted) order."""
    low, high = sorted((ephemeral_a, ephemeral_b))
    return hashlib.sha256(
        TRANSCRIPT_DOMAIN
        + struct.pack(">HH", PROTOCOL_VERSION, len(chain_id))
        + chain_id
        + low
        + high
    ).digest()


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    peer_public_key: bytes
    session: SecureSession


class Handshake:
    """One side of one handshake: hello() -> on_hello(peer hello) -> on_auth(peer auth)."""

    def __init__(
        self,
        *,
        signing_key: SigningKey,
        chain_id: str,
        is_allowed: Callable[[bytes], bool],
        expected_peer_key: bytes | None = None,
        ephemeral_secret: bytes | None = None,
    ) -> None:
        self._signing_key = signing_key
        self._own_key = bytes(signing_key.verify_key)
        self._chain_id = chain_id.encode()
        assert len(self._chain_id) <= CHAIN_ID_BYTES_MAX
        self._is_allowed = is_allowed
        self._expected_peer_key = expected_peer_key
        self._ephemeral_secret = ephemeral_secret or os.urandom(32)
        self._ephemeral_public = crypto_scalarmult_base(self._ephemeral_secret)
        self._transcript: bytes | None = None
        self._session: SecureSession | None = None

    def hello(self) -> bytes:
        return HELLO.pack(MAGIC, PROTOCOL_VERSION, self._ephemeral_public)

    def on_hello(self, body: bytes) -> bytes:
        """Derive the session from the peer's HELLO; return our sealed AUTH body."""
        assert self._session is None, "on_hello called twice"
        if len(body) != HELLO.size:
            raise HandshakeError(f"hello of {len(body)} bytes", reason="bad_handshake")
        magic, version, peer_ephemeral = HELLO.unpack(body)
        if magic != MAGIC:
            raise HandshakeError("bad magic", reason="bad_handshake")
        if version != PROTOCOL_VERSION:
            raise HandshakeError(f"protocol version {version}", reason="bad_version")
        if peer_ephemeral == self._ephemeral_public:
            raise HandshakeError("reflected ephemeral key", reason="self")
        try:
            shared = crypto_scalarmult(self._ephemeral_secret, peer_ephemeral)
        except CryptoError:
            raise HandshakeError("low-order ephemeral key", reason="bad_handshake") from None
        if shared == bytes(32):
            raise HandshakeError("all-zero shared secret", reason="bad_handshake")
        transcript = transcript_hash(
            chain_id=self._chain_id,
            ephemeral_a=self._ephemeral_public,
            ephemeral_b=peer_ephemeral,
        )
        keys = hkdf_sha256(ikm=shared, salt=transcript, info=KEY_SCHEDULE_INFO, length=64)
        low_to_high, high_to_low = keys[:KEY_BYTES], keys[KEY_BYTES:]
        if self._ephemeral_public < peer_ephemeral:
            session = SecureSession(send_key=low_to_high, receive_key=high_to_low)
        else:
            session = SecureSession(send_key=high_to_low, receive_key=low_to_high)
        self._transcript = transcript
        self._session = session
        signature = self._signing_key.sign(HANDSHAKE_DOMAIN + transcript).signature
        return session.seal(self._own_key + signature)

    def on_auth(self, body: bytes) -> HandshakeResult:
        """Open and check the peer's AUTH; on success the session is ready for payload."""
        assert self._session is not None, "auth before hello"
        assert self._transcript is not None
        plaintext = self._session.open(body)
        if len(plaintext) != AUTH_PLAINTEXT_BYTES:
            raise HandshakeError(f"auth of {len(plaintext)} bytes", reason="bad_handshake")
        peer_key = plaintext[:PUBLIC_KEY_BYTES]
        signature = plaintext[PUBLIC_KEY_BYTES:]
        try:
            VerifyKey(peer_key).verify(HANDSHAKE_DOMAIN + self._transcript, signature)
        except (BadSignatureError, CryptoError, ValueError):
            raise HandshakeError("bad handshake signature", reason="bad_signature") from None
        if peer_key == self._own_key:
            raise HandshakeError("connected to self", reason="self")
        if not self._is_allowed(peer_key):
            raise HandshakeError(f"key {peer_key.hex()[:16]} not allowed", reason="unknown_key")
        if self._expected_peer_key is not None and peer_key != self._expected_peer_key:
            raise HandshakeError("peer is not the key we dialled", reason="unexpected_key")
        return HandshakeResult(peer_public_key=peer_key, session=self._session)


async def run_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handshake: Handshake,
    *,
    timeout_s: float,
) -> HandshakeResult:
    """Drive `handshake` over a stream. Raises a P2PError subclass or OSError."""
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(encode_frame(handshake.hello()))
            peer_hello = await read_frame(
                reader, frame_bytes_max=HANDSHAKE_FRAME_BYTES_MAX, timeout_s=timeout_s
            )
            writer.write(encode_frame(handshake.on_hello(peer_hello)))
            await writer.drain()
            peer_auth = await read_frame(
                reader, frame_bytes_max=HANDSHAKE_FRAME_BYTES_MAX, timeout_s=timeout_s
            )
            return handshake.on_auth(peer_auth)
    except TimeoutError:
        raise PeerTimeout(f"handshake not done within {timeout_s}s") from None
