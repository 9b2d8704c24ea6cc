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
import struct
from dataclasses import dataclass, field, fields

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
    # Memoised canonical bytes, hash and replay key: a tx is hashed by the mempool, the
    # block builder, the executor and the services, and re-encoding it each time cost more
    # than the rest of its bookkeeping. Derived data only: never compared, never shown.
    # Safe because the fields they derive from are frozen and a decoded tx's `_encoded` is
    # the exact bytes it was decoded from (decoding is strict, so those are canonical).
    # Two threads may fill a memo at once; both compute the same value, so either store
    # wins harmlessly (one slot store is atomic under the GIL).
    _encoded: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _hash: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _replay_key: bytes | None = field(default=None, init=False, compare=False, repr=False)

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
        """The signed bytes: the encoding minus its trailing signature. Sliced from the
        memoised encoding when there is one (a decoded tx always has it), re-encoded once
        otherwise; both give the same bytes because the encoding is canonical."""
        encoded = self._encoded
        if encoded is None:
            return _encode_unsigned(self)
        return encoded[:-SIGNATURE_BYTES]

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
        """40 bytes: signer || u64 nonce. Stored forever once the tx executes. Memoised like
        the hash: the mempool indexes by it and check_tx and execution read it."""
        key = self._replay_key
        if key is None:
            key = self.signer + self.nonce.to_bytes(8, "big")
            object.__setattr__(self, "_replay_key", key)
        return key


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


def decode_tx(data: bytes, *, digest: bytes | None = None) -> Tx:
    """Strict decode: DecodeError on any non-canonical or invalid encoding. A caller that
    already hashed `data` (gossip does, for its seen-cache) passes its SHA-256 `digest`,
    which is memoised on the Tx so that nobody downstream hashes the tx again."""
    size = len(data)
    if size > limits.tx_bytes_max:
        raise DecodeError(f"tx is {size} bytes, max {limits.tx_bytes_max}")
    if type(data) is not bytes:
        data = _as_bytes(data)
    if size > DECODED_TX_BYTES_CACHED_MAX:
        tx = _decode_tx_uncached(data)
    else:
        tx = _decode_tx_cached(data)
    if digest is not None and tx._hash is None:
        _set_hash(tx, digest)
    return tx


def _as_bytes(data: object) -> bytes:
    """Hashable bytes for the cache key (a bytearray is not hashable)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise DecodeError(f"expected bytes, got {type(data).__name__}")


def _decode_tx_uncached(data: bytes) -> Tx:
    """Strict decode of one tx. The common case takes the fast path (`_parse_fast`), which
    accepts only txs that pass every check of `Tx.invalid`; any input it does not accept
    goes through the field-by-field Reader and `Tx.invalid`, which either accept it too (so
    a gap in the fast path costs time, never a valid tx) or name the problem."""
    parsed = _parse_fast(data)
    if parsed is not None:
        return _build_decoded(parsed, data)
    tx = _build_decoded(_parse_with_reader(data), data)
    if (reason := tx.invalid()) is not None:
        raise DecodeError(reason)
    return tx


_Fields = tuple[str, bytes, int, int, str, bytes, bytes]
# The slot setters of Tx in field order. A frozen dataclass's __init__ sets each field
# through object.__setattr__, which made building a Tx 40% of a decode; the slot descriptors
# do the same stores at a third of the cost. The assert keeps this in step with the class.
_TX_FIELD_NAMES = (
    "chain_id", "signer", "nonce", "expiry_height", "kind", "body", "signature",
    "_encoded", "_hash", "_replay_key",
)  # fmt: skip
assert tuple(f.name for f in fields(Tx)) == _TX_FIELD_NAMES, "Tx fields changed"
assert not hasattr(Tx, "__post_init__"), "_build_decoded bypasses __init__"
(
    _set_chain_id, _set_signer, _set_nonce, _set_expiry_height, _set_kind, _set_body,
    _set_signature, _set_encoded, _set_hash, _set_replay_key,
) = (getattr(Tx, name).__set__ for name in _TX_FIELD_NAMES)  # fmt: skip


def _build_decoded(parsed: _Fields, encoded: bytes) -> Tx:
    """A Tx from decoded fields, its encoding memoised (canonical: decoding was strict).
    Equal to Tx(...) of the same fields: Tx has no __post_init__ and every slot is set.
    The replay key is memoised too: in the encoding the signer is followed by the u64
    nonce, so signer || nonce is one slice (the mempool, check_tx and execution all read it,
    and the property's concatenation cost several times more)."""
    signer_start = 2 + len(parsed[0])  # version, chain id length, chain id (ASCII)
    tx = object.__new__(Tx)
    _set_chain_id(tx, parsed[0])
    _set_signer(tx, parsed[1])
    _set_nonce(tx, parsed[2])
    _set_expiry_height(tx, parsed[3])
    _set_kind(tx, parsed[4])
    _set_body(tx, parsed[5])
    _set_signature(tx, parsed[6])
    _set_encoded(tx, encoded)
    _set_hash(tx, None)
    _set_replay_key(tx, encoded[signer_start : signer_start + _REPLAY_KEY_BYTES])
    return tx


_REPLAY_KEY_BYTES = PUBLIC_KEY_BYTES + 8  # signer || u64 nonce, adjacent in the encoding
# version, chain id length, signer, nonce, expiry, kind length, body length, signature
_TX_FIXED_BYTES = 1 + 1 + PUBLIC_KEY_BYTES + 8 + 8 + 1 + 4 + SIGNATURE_BYTES
_KIND_LENGTH_AFTER_CHAIN_ID = 2 + PUBLIC_KEY_BYTES + 8 + 8  # offset of the kind length byte
# One struct per (chain id length, kind length): it unpacks everything from the chain id to
# the body length in one call. At most 51 x 65 of them (the length bounds).
_LAYOUTS: dict[tuple[int, int], struct.Struct] = {}
# (chain id bytes, kind bytes) -> their text, for pairs that are ASCII and pass
# chain_id_invalid and kind_invalid: each pair is decoded and checked once, not per tx. A
# chain has one chain id and few kinds; past the bound, new pairs are checked every time.
_VALID_NAMES: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_VALID_NAMES_MAX = 1_024


def _parse_fast(data: bytes) -> _Fields | None:
    """The fields of a well-formed tx that passes `Tx.invalid`, with one struct unpack and
    three slices, or None if anything is off (the caller then takes the Reader path, which
    names the problem). Every offset is bounds-checked before it is read (Python slices
    silently shorten), and the lengths must add up to len(data) exactly: the same rules as
    `_parse_with_reader`, which tests/protocol/test_tx_decode_fast.py compares it against."""
    size = len(data)
    if size < _TX_FIXED_BYTES or data[0] != TX_VERSION:
        return None
    chain_size = data[1]
    if chain_size > limits.chain_id_bytes_max or size < _TX_FIXED_BYTES + chain_size:
        return None
    kind_size = data[chain_size + _KIND_LENGTH_AFTER_CHAIN_ID]
    if kind_size > limits.kind_bytes_max or size < _TX_FIXED_BYTES + chain_size + kind_size:
        return None
    layout = _LAYOUTS.get((chain_size, kind_size))
    if layout is None:
        layout = _LAYOUTS[chain_size, kind_size] = struct.Struct(
            f">{chain_size}s{PUBLIC_KEY_BYTES}sQQB{kind_size}sI"
        )
    chain_id, signer, nonce, expiry_height, _, kind, body_size = layout.unpack_from(data, 2)
    body_start = 2 + layout.size
    signature_start = size - SIGNATURE_BYTES
    if body_size > limits.tx_body_bytes_max or body_start + body_size != signature_start:
        return None
    names = _VALID_NAMES.get((chain_id, kind))
    if names is None:
        names = _valid_names(chain_id, kind)
        if names is None:
            return None
    return (
        names[0],
        signer,
        nonce,
        expiry_height,
        names[1],
        data[body_start:signature_start],
        data[signature_start:],
    )


def _valid_names(chain_id: bytes, kind: bytes) -> tuple[str, str] | None:
    """The text of a chain id and kind if both are ASCII and valid (remembered while the
    table has room), else None."""
    if not (chain_id.isascii() and kind.isascii()):
        return None
    names = chain_id.decode("ascii"), kind.decode("ascii")
    if chain_id_invalid(names[0]) is not None or kind_invalid(names[1]) is not None:
        return None
    if len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES[chain_id, kind] = names
    return names


def _parse_with_reader(data: bytes) -> _Fields:
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
    return chain_id, signer, nonce, expiry_height, kind, body, signature


# Failures raise and so are never cached; only valid, canonical txs are remembered.
_decode_tx_cached = functools.lru_cache(maxsize=DECODED_TXS_CACHED)(_decode_tx_uncached)
