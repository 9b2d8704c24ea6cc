"""Transactions: canonical bytes, signing, hashing.

Layout (docs/PROTOCOL.md §Tx):
    u8 version=1 | bytes8 chain_id | 32B signer | u64 nonce | u64 expiry_height
    | bytes8 kind | bytes32 body | 64B signature
The signature covers DOMAIN_TX || (every field before the signature). The tx hash is
SHA-256 of the whole encoding. Replay protection is by (signer, nonce): a pair executes at
most once, ever, whatever the bytes around it, so re-encoding or re-signing cannot replay it.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass, field

from protocol import limits
from protocol.crypto import (
    DOMAIN_TX,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    SigningKey,
    sha256,
    verify,
)
from protocol.encoding import U64_MAX, DecodeError, Reader, Writer

TX_VERSION = 1
_CHAIN_ID_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")
_KIND_CHARS = frozenset(string.ascii_lowercase + string.digits + "_.")


@functools.lru_cache(maxsize=256)
def chain_id_invalid(chain_id: str) -> str | None:
    """Cached: every tx of a block names the same chain id and few kinds, and this check ran
    once per tx decode."""
    if not 1 <= len(chain_id) <= limits.chain_id_bytes_max:
        return f"chain id must be 1..{limits.chain_id_bytes_max} characters"
    if not set(chain_id) <= _CHAIN_ID_CHARS:
        return "chain id may use only a-z, 0-9, '-', '_' and '.'"
    return None


@functools.lru_cache(maxsize=1024)
def kind_invalid(kind: str) -> str | None:
    if not 1 <= len(kind) <= limits.kind_bytes_max:
        return f"kind must be 1..{limits.kind_bytes_max} characters"
    if not set(kind) <= _KIND_CHARS:
        return "kind may use only a-z, 0-9, '_' and '.'"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tx:
    chain_id: str
    signer: bytes  # Ed25519 public key, 32 bytes
    nonce: int  # chosen by the client; (signer, nonce) executes at most once
    expiry_height: int  # invalid in any block above this height
    kind: str  # service tx kind, e.g. "notary.anchor"
    body: bytes  # service payload (msgpack, see docs/SERVICES.md)
    signature: bytes
    # Memoised canonical bytes and hash: a tx is hashed by the mempool, the block builder,
    # the executor and the services, and re-encoding it each time cost more than the rest
    # of its bookkeeping. Derived data only: never compared, never shown.
    _encoded: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _hash: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def invalid(self) -> str | None:
        """Stateless checks, cheap; the signature is checked separately (verify_signature)."""
        if (reason := chain_id_invalid(self.chain_id)) is not None:
            return reason
        if (reason := kind_invalid(self.kind)) is not None:
            return reason
        if len(self.signer) != PUBLIC_KEY_BYTES:
            return f"signer is {len(self.signer)} bytes, want {PUBLIC_KEY_BYTES}"
        if len(self.signature) != SIGNATURE_BYTES:
            return f"signature is {len(self.signature)} bytes, want {SIGNATURE_BYTES}"
        if not 0 <= self.nonce <= U64_MAX or not 0 <= self.expiry_height <= U64_MAX:
            return "nonce and expiry height must fit in u64"
        if len(self.body) > limits.tx_body_bytes_max:
            return f"body is {len(self.body)} bytes, max {limits.tx_body_bytes_max}"
        return None

    def signing_payload(self) -> bytes:
        return _encode_unsigned(self)

    def encode(self) -> bytes:
        encoded = self._encoded
        if encoded is None:
            encoded = _encode_unsigned(self) + self.signature
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    def hash(self) -> bytes:
        digest = self._hash
        if digest is None:
            digest = sha256(self.encode())
            object.__setattr__(self, "_hash", digest)
        return digest

    def verify_signature(self) -> bool:
        return verify(self.signer, DOMAIN_TX, self.signing_payload(), self.signature)

    @property
    def replay_key(self) -> bytes:
        """40 bytes: signer || u64 nonce. Stored forever once the tx executes."""
        return self.signer + self.nonce.to_bytes(8, "big")


def _encode_unsigned(tx: Tx) -> bytes:
    return (
        Writer()
        .u8(TX_VERSION)
        .bytes8(tx.chain_id.encode("ascii"))
        .fixed(tx.signer, PUBLIC_KEY_BYTES)
        .u64(tx.nonce)
        .u64(tx.expiry_height)
        .bytes8(tx.kind.encode("ascii"))
        .bytes32(tx.body)
        .finish()
    )


def sign_tx(
    key: SigningKey,
    *,
    chain_id: str,
    nonce: int,
    expiry_height: int,
    kind: str,
    body: bytes,
) -> Tx:
    unsigned = Tx(
        chain_id=chain_id,
        signer=key.public_key,
        nonce=nonce,
        expiry_height=expiry_height,
        kind=kind,
        body=body,
        signature=bytes(SIGNATURE_BYTES),
    )
    reason = unsigned.invalid()
    if reason is not None:
        raise ValueError(f"cannot sign an invalid tx: {reason}")
    signature = key.sign(DOMAIN_TX, unsigned.signing_payload())
    return Tx(
        chain_id=chain_id,
        signer=unsigned.signer,
        nonce=nonce,
        expiry_height=expiry_height,
        kind=kind,
        body=body,
        signature=signature,
    )


# Decoded txs remembered by their exact bytes. A node decodes each tx on admission, then
# again in every block and consensus message that carries it (a PRE-PREPARE, a VIEW-CHANGE);
# decoding is a pure function of the bytes and a Tx is immutable, so the later decodes can
# return the first one's object. Sized above the mempool's default 20,000 txs, so a tx
# admitted earlier is still here when its block arrives. Only txs up to
# DECODED_TX_BYTES_CACHED_MAX are kept (a typical tx is ~250 bytes), which bounds the
# cache at ~32,768 x 2 KiB = 64 MiB even if a flood of large txs passes through decode.
DECODED_TXS_CACHED = 32_768
DECODED_TX_BYTES_CACHED_MAX = 768


def decode_tx(data: bytes) -> Tx:
    """Strict decode: DecodeError on any non-canonical or invalid encoding."""
    if len(data) > limits.tx_bytes_max:
        raise DecodeError(f"tx is {len(data)} bytes, max {limits.tx_bytes_max}")
    data = _as_bytes(data)
    if len(data) > DECODED_TX_BYTES_CACHED_MAX:
        return _decode_tx_uncached(data)
    return _decode_tx_cached(data)


def _as_bytes(data: object) -> bytes:
    """Hashable bytes for the cache key (a bytearray is not hashable)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise DecodeError(f"expected bytes, got {type(data).__name__}")


def _decode_tx_uncached(data: bytes) -> Tx:
    reader = Reader(data)
    version = reader.u8("version")
    if version != TX_VERSION:
        raise DecodeError(f"unknown tx version {version}")
    chain_id = reader.ascii8("chain_id", max_bytes=limits.chain_id_bytes_max)
    signer = reader.fixed(PUBLIC_KEY_BYTES, "signer")
    nonce = reader.u64("nonce")
    expiry_height = reader.u64("expiry_height")
    kind = reader.ascii8("kind", max_bytes=limits.kind_bytes_max)
    body = reader.bytes32("body", max_bytes=limits.tx_body_bytes_max)
    signature = reader.fixed(SIGNATURE_BYTES, "signature")
    reader.finish("tx")
    tx = Tx(
        chain_id=chain_id,
        signer=signer,
        nonce=nonce,
        expiry_height=expiry_height,
        kind=kind,
        body=body,
        signature=signature,
    )
    if (reason := tx.invalid()) is not None:
        raise DecodeError(reason)
    object.__setattr__(tx, "_encoded", data)  # canonical: decoding was strict
    return tx


# Failures raise and so are never cached; only valid, canonical txs are remembered.
_decode_tx_cached = functools.lru_cache(maxsize=DECODED_TXS_CACHED)(_decode_tx_uncached)
