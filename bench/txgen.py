"""Pre-signed load: realistic notary anchors from many agencies, signed before the run.

Each tx is a `notary.anchor` of a unique document hash, signed by one of the genesis
agencies (round-robin), with metadata padded so the encoded tx is about `tx_bytes` long.
Signing runs in a separate process pool before the measured run starts, so the cost of
Ed25519 signing (~48,000/s per core, DESIGN.md) never steals CPU from the nodes while they
are being measured; the report shows the signing time on its own line.

The anchor body is encoded here, not by `services.notary.encode_anchor`, because bench may
only reach the node through its client and CLI (tests/test_architecture.py). The layout is
the msgpack map {document_hash, doc_type, metadata} that services/notary.py defines; a unit
test checks both encoders give identical bytes.

Nonces: (signer, nonce) executes at most once, ever, so every run draws a random 40-bit
nonce base per agency and counts up from it; two runs against the same chain never collide
in practice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import multiprocessing
import os
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec

from protocol.crypto import SEED_BYTES, SigningKey
from protocol.tx import sign_tx

log = logging.getLogger(__name__)

ANCHOR_KIND = "notary.anchor"
DOC_TYPES = ("birth-cert", "land-title", "tax-record", "biz-permit")  # equal lengths
METADATA_VALUE_CHARS_MAX = 256  # services/notary.py MetadataValue
METADATA_ENTRIES_MAX = 16  # services/notary.py Metadata
SIGN_CHUNK_TXS = 2_000  # txs per worker task: big enough to amortise pickling
SIGN_WORKERS_MAX = 2
AGENCY_FILES_MAX = 64
_PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 "


class TxGenError(Exception):
    """Keys or parameters the generator cannot use; the message names the problem."""


class _AnchorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """Mirror of services.notary.AnchorBody: same field names, same order, same encoding
    (defaults omitted; bench anchors carry no expiry)."""

    document_hash: bytes
    doc_type: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


_ENCODER = msgspec.msgpack.Encoder()


def encode_anchor_body(document_hash: bytes, doc_type: str, metadata: dict[str, str]) -> bytes:
    assert len(document_hash) == 32
    return _ENCODER.encode(_AnchorBody(document_hash, doc_type, metadata))


@dataclass(frozen=True, slots=True)
class SignedTx:
    text: str  # base64 of the canonical encoding: the wire form, encoded before the run
    size: int  # encoded bytes
    hash_hex: str  # lowercase hex SHA-256 of the encoding, as NewBlock's tx_hashes has it
    kind: str = ANCHOR_KIND  # the tx kind, for per-kind figures (--mix)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    chain_id: str
    expiry_height: int
    tx_bytes: int  # target encoded size; the padding gets within a few bytes of it
    run_tag: str  # unique per run: document hashes are SHA-256(run_tag, index)


@dataclass(frozen=True, slots=True)
class SignResult:
    txs: list[SignedTx]
    sign_seconds: float  # wall time of the pool, start to last tx
    workers: int


def load_agency_keys(directory: Path) -> list[SigningKey]:
    """The agency keys in DIR/agencies/agency*.json (or DIR itself), sorted by name.

    Reads the key-file format of node/keys.py ({"type", "public_key", "private_key"}) and
    applies the same checks: mode 0600, seed matches public key."""
    folder = directory / "agencies" if (directory / "agencies").is_dir() else directory
    paths = sorted(folder.glob("agency*.json"), key=lambda p: (len(p.name), p.name))
    if not paths:
        raise TxGenError(f"{folder}: no agency*.json key files")
    return [_load_key(path) for path in paths[:AGENCY_FILES_MAX]]


def _load_key(path: Path) -> SigningKey:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise TxGenError(f"{path}: readable by group/others; chmod 600 it")
    try:
        document = json.loads(path.read_text(encoding="utf-8")[:4096])
        seed = bytes.fromhex(document["private_key"])
        public_key = bytes.fromhex(document["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TxGenError(f"{path}: not a key file: {error}") from None
    if len(seed) != SEED_BYTES:
        raise TxGenError(f"{path}: private_key is not {SEED_BYTES} bytes")
    key = SigningKey(seed)
    if key.public_key != public_key:
        raise TxGenError(f"{path}: public_key does not match private_key")
    return key


def document_hash(run_tag: str, index: int) -> bytes:
    return hashlib.sha256(f"{run_tag}/{index}".encode()).digest()


def base_metadata(index: int) -> dict[str, str]:
    return {"ref": f"{index:09d}"}


def padding(extra_chars: int) -> dict[str, str]:
    """Metadata entries whose total value length is `extra_chars` (entries' keys add a few
    bytes more; `padded_metadata` corrects for them)."""
    entries: dict[str, str] = {}
    remaining = max(0, extra_chars)
    slot = 0
    while remaining > 0 and slot < METADATA_ENTRIES_MAX - 1:
        size = min(remaining, METADATA_VALUE_CHARS_MAX)
        text = (_PAD_ALPHABET * (size // len(_PAD_ALPHABET) + 1))[:size]
        entries[f"n{slot:02d}"] = text
        remaining -= size
        slot += 1
    return entries


def padded_metadata(spec: LoadSpec, key: SigningKey, index: int) -> dict[str, str]:
    """Metadata that makes tx `index` encode to about spec.tx_bytes (never more padding than
    the notary allows: 16 entries of 256 characters; smaller targets get no padding)."""
    metadata = base_metadata(index)
    extra = spec.tx_bytes - _encode_one(spec, key, index, 0, metadata).size
    trial = metadata
    for _ in range(4):  # msgpack headers grow at 32 and 256 chars; converges in a few steps
        if extra <= 0:
            break
        trial = {**metadata, **padding(extra)}
        size = _encode_one(spec, key, index, 0, trial).size
        if size == spec.tx_bytes:
            break
        extra += spec.tx_bytes - size
    return trial


def _encode_one(
    spec: LoadSpec, key: SigningKey, index: int, nonce: int, metadata: dict[str, str]
) -> SignedTx:
    body = encode_anchor_body(
        document_hash(spec.run_tag, index), DOC_TYPES[index % len(DOC_TYPES)], metadata
    )
    tx = sign_tx(
        key,
        chain_id=spec.chain_id,
        nonce=nonce,
        expiry_height=spec.expiry_height,
        kind=ANCHOR_KIND,
        body=body,
    )
    raw = tx.encode()
    return _signed(raw, ANCHOR_KIND)


def _signed(raw: bytes, kind: str) -> SignedTx:
    return SignedTx(
        base64.b64encode(raw).decode("ascii"), len(raw), hashlib.sha256(raw).hexdigest(), kind
    )


def sign_chunk(
    spec: LoadSpec, seeds: Sequence[bytes], nonce_bases: Sequence[int], start: int, count: int
) -> list[SignedTx]:
    """Txs start..start+count-1; tx i is signed by agency i % len(seeds) with nonce
    base + i // len(seeds), so each agency's nonces count up without gaps. Runs in a worker."""
    keys = [SigningKey(seed) for seed in seeds]
    # Padding depends only on the doc type's length (the other fields have fixed widths).
    pads = [
        _padding_of(padded_metadata(spec, keys[0], start + offset))
        for offset in range(len(DOC_TYPES))
    ]
    signed = []
    for index in range(start, start + count):
        agency = index % len(keys)
        metadata = {**base_metadata(index), **pads[(index - start) % len(DOC_TYPES)]}
        nonce = nonce_bases[agency] + index // len(keys)
        signed.append(_encode_one(spec, keys[agency], index, nonce, metadata))
    return signed


def _padding_of(metadata: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in metadata.items() if name.startswith("n")}


def nonce_bases(agencies: int) -> list[int]:
    """A random 40-bit base per agency, shifted so 2^20 txs per agency fit below the next."""
    return [int.from_bytes(os.urandom(5), "big") << 20 for _ in range(agencies)]


def sign_all(spec: LoadSpec, keys: Sequence[SigningKey], count: int, *, workers: int) -> SignResult:
    """`count` signed txs, in index order, signed by a pool of `workers` processes (0: in
    this process, for tiny loads and tests)."""
    assert count >= 0
    assert keys
    seeds = [key.seed for key in keys]
    bases = nonce_bases(len(keys))
    chunks = [(s, min(SIGN_CHUNK_TXS, count - s)) for s in range(0, count, SIGN_CHUNK_TXS)]
    started = time.perf_counter()
    txs: list[SignedTx] = []
    if workers <= 0 or len(chunks) <= 1:
        for start, size in chunks:
            txs.extend(sign_chunk(spec, seeds, bases, start, size))
        return SignResult(txs, time.perf_counter() - started, 0)
    workers = min(workers, SIGN_WORKERS_MAX, len(chunks))
    # spawn, not fork: the parent may hold threads (aiohttp resolver, executors).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(sign_chunk, spec, seeds, bases, s, n) for s, n in chunks]
        for future in futures:
            txs.extend(future.result())
    assert len(txs) == count
    return SignResult(txs, time.perf_counter() - started, workers)


# --- drafts of any kind (--mix) ------------------------------------------------------------

NonceDraft = tuple[int, int, str, bytes]  # (signer slot, nonce, kind, body)


def anchor_maker(spec: LoadSpec, key: SigningKey) -> Callable[[int], bytes]:
    """Body of mixed-load anchor j: padded like the pure load, document hashes under their
    own tag (`run_tag/mix`), so they never collide with the ready probe's anchors."""
    pads = [_padding_of(padded_metadata(spec, key, j)) for j in range(len(DOC_TYPES))]
    tag = f"{spec.run_tag}/mix"

    def anchor(j: int) -> bytes:
        metadata = {**base_metadata(j), **pads[j % len(DOC_TYPES)]}
        return encode_anchor_body(document_hash(tag, j), DOC_TYPES[j % len(DOC_TYPES)], metadata)

    return anchor


def sign_draft_chunk(
    chain_id: str, expiry_height: int, seeds: Sequence[bytes], drafts: Sequence[NonceDraft]
) -> list[SignedTx]:
    """Sign drafts whose nonces are already chosen. Runs in a worker."""
    keys: dict[int, SigningKey] = {}
    signed = []
    for slot, nonce, kind, body in drafts:
        key = keys.get(slot) or keys.setdefault(slot, SigningKey(seeds[slot]))
        tx = sign_tx(
            key,
            chain_id=chain_id,
            nonce=nonce,
            expiry_height=expiry_height,
            kind=kind,
            body=body,
        )
        signed.append(_signed(tx.encode(), kind))
    return signed


def sign_drafts(
    spec: LoadSpec,
    seeds: Sequence[bytes],
    drafts: Sequence[NonceDraft],
    *,
    workers: int,
) -> SignResult:
    """Like sign_all, for drafts of any kind: chunks of SIGN_CHUNK_TXS in a spawn pool."""
    chunks = [drafts[s : s + SIGN_CHUNK_TXS] for s in range(0, len(drafts), SIGN_CHUNK_TXS)]
    started = time.perf_counter()
    txs: list[SignedTx] = []
    if workers <= 0 or len(chunks) <= 1:
        for chunk in chunks:
            txs.extend(sign_draft_chunk(spec.chain_id, spec.expiry_height, seeds, chunk))
        return SignResult(txs, time.perf_counter() - started, 0)
    workers = min(workers, SIGN_WORKERS_MAX, len(chunks))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(sign_draft_chunk, spec.chain_id, spec.expiry_height, seeds, chunk)
            for chunk in chunks
        ]
        for future in futures:
            txs.extend(future.result())
    assert len(txs) == len(drafts)
    return SignResult(txs, time.perf_counter() - started, workers)
