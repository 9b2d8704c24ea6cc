"""Hashes and domain-separated Ed25519 signatures.

Every signature covers `domain || payload`, where `domain` is a fixed ASCII tag ending in
a newline (e.g. b"seoulchain/tx/v1\n"). A signature made for one kind of object can therefore
never be replayed as another kind. Ed25519 (RFC 8032) signing is deterministic, which the
simulator relies on; libsodium's verify rejects non-canonical signatures.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
HASH_BYTES = 32
SEED_BYTES = 32
ZERO_HASH = bytes(HASH_BYTES)

DOMAIN_TX = b"seoulchain/tx/v1\n"
DOMAIN_COMMIT_VOTE = b"seoulchain/commit-vote/v1\n"
DOMAIN_RAFT_SEAL = b"seoulchain/raft-seal/v1\n"
DOMAIN_CONSENSUS = b"seoulchain/consensus/v1\n"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hex_hash(digest: bytes) -> str:
    return digest.hex()


def parse_hex(text: str, *, size: int, field: str) -> bytes:
    """Lowercase or uppercase hex of exactly `size` bytes; ValueError naming the field."""
    try:
        value = bytes.fromhex(text)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{field} is not hex: {error}") from None
    if len(value) != size:
        raise ValueError(f"{field} is {len(value)} bytes, want {size}")
    return value


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key. repr() never shows the seed, so it cannot leak into logs."""

    seed: bytes

    def __post_init__(self) -> None:
        assert len(self.seed) == SEED_BYTES

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key.hex()[:16]}…)"

    @property
    def public_key(self) -> bytes:
        return _public_key_of(self.seed)

    def sign(self, domain: bytes, payload: bytes) -> bytes:
        return _nacl_key(self.seed).sign(domain + payload).signature

    @staticmethod
    def generate() -> SigningKey:
        return SigningKey(bytes(nacl.signing.SigningKey.generate()))

    @staticmethod
    def from_secret(secret: bytes) -> SigningKey:
        """Deterministic key from any secret (tests, simulator, benchmark agencies)."""
        return SigningKey(sha256(b"seoulchain/test-key\n" + secret))


_KEY_CACHE: dict[bytes, nacl.signing.SigningKey] = {}
_PUBLIC_CACHE: dict[bytes, bytes] = {}
_VERIFY_KEY_CACHE: dict[bytes, nacl.signing.VerifyKey] = {}
_CACHE_MAX = 4096


def _nacl_key(seed: bytes) -> nacl.signing.SigningKey:
    key = _KEY_CACHE.get(seed)
    if key is None:
        if len(_KEY_CACHE) >= _CACHE_MAX:
            _KEY_CACHE.clear()
        key = nacl.signing.SigningKey(seed)
        _KEY_CACHE[seed] = key
    return key


def _public_key_of(seed: bytes) -> bytes:
    public = _PUBLIC_CACHE.get(seed)
    if public is None:
        if len(_PUBLIC_CACHE) >= _CACHE_MAX:
            _PUBLIC_CACHE.clear()
        public = bytes(_nacl_key(seed).verify_key)
        _PUBLIC_CACHE[seed] = public
    return public


def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey | None:
    key = _VERIFY_KEY_CACHE.get(public_key)
    if key is None:
        if len(public_key) != PUBLIC_KEY_BYTES:
            return None
        try:
            key = nacl.signing.VerifyKey(public_key)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            return None
        if len(_VERIFY_KEY_CACHE) >= _CACHE_MAX:
            _VERIFY_KEY_CACHE.clear()
        _VERIFY_KEY_CACHE[public_key] = key
    return key


def verify(public_key: bytes, domain: bytes, payload: bytes, signature: bytes) -> bool:
    """True iff `signature` is a valid Ed25519 signature by `public_key` over domain||payload.
    Never raises on bad input: malformed keys or signatures simply fail verification."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    key = _verify_key(public_key)
    if key is None:
        return False
    try:
        key.verify(domain + payload, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def constant_time_equal(left: bytes, right: bytes) -> bool:
    return hmac.compare_digest(left, right)
