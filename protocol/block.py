"""Blocks: header, body (txs), canonical bytes and hash.

Header layout (docs/PROTOCOL.md §Block header):
    u8 version=1 | bytes8 chain_id | u64 height | 32B prev_hash | u64 time_ms
    | 32B proposer | u32 tx_count | 32B txs_root | 32B validators_hash
    | u64 exec_height | 32B exec_app_hash | 32B exec_results_root
The block hash is SHA-256 of the header encoding; the header commits to the txs through
txs_root (RFC 6962 Merkle root over the tx hashes).

Execution lags consensus by a fixed `pipeline_depth` P from genesis: the header of height h
attests the app hash and results root *after executing block h - P* (exec_height = h - P,
or 0 with zero hashes while h <= P). This lets P blocks be in flight at once while every
block's results are still signed by a later block's seal. P = 1 is CometBFT's
"last app hash" rule.

Block layout: bytes32 header | u32 tx_count | tx_count × bytes32 tx.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from protocol import limits, merkle
from protocol.crypto import HASH_BYTES, PUBLIC_KEY_BYTES, ZERO_HASH, sha256
from protocol.encoding import DecodeError, Reader, Writer
from protocol.tx import Tx, chain_id_invalid, decode_tx

_U32 = struct.Struct(">I")
_BYTES_LIKE = (bytes, bytearray, memoryview)

BLOCK_VERSION = 1
HEADER_BYTES_MAX = 1024  # a header is at most 1 + 51 + 8 + 32 + 8 + 32 + 4 + 32×2 + 8 + 32×2 bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockHeader:
    chain_id: str
    height: int
    prev_hash: bytes
    time_ms: int
    proposer: bytes
    tx_count: int
    txs_root: bytes
    validators_hash: bytes
    exec_height: int
    exec_app_hash: bytes
    exec_results_root: bytes

    def invalid(self) -> str | None:
        if (reason := chain_id_invalid(self.chain_id)) is not None:
            return reason
        if self.height < 1:
            return "height must be >= 1"
        if self.exec_height >= self.height:
            return f"exec height {self.exec_height} must be below height {self.height}"
        if self.tx_count > limits.block_txs_max:
            return f"tx count {self.tx_count} exceeds {limits.block_txs_max}"
        for name in (
            "prev_hash",
            "txs_root",
            "validators_hash",
            "exec_app_hash",
            "exec_results_root",
        ):
            if len(getattr(self, name)) != HASH_BYTES:
                return f"{name} must be {HASH_BYTES} bytes"
        if len(self.proposer) != PUBLIC_KEY_BYTES:
            return f"proposer must be {PUBLIC_KEY_BYTES} bytes"
        if self.height == 1 and self.prev_hash != ZERO_HASH:
            return "height 1 must have a zero prev hash"
        return None

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(BLOCK_VERSION)
            .bytes8(self.chain_id.encode("ascii"))
            .u64(self.height)
            .fixed(self.prev_hash, HASH_BYTES)
            .u64(self.time_ms)
            .fixed(self.proposer, PUBLIC_KEY_BYTES)
            .u32(self.tx_count)
            .fixed(self.txs_root, HASH_BYTES)
            .fixed(self.validators_hash, HASH_BYTES)
            .u64(self.exec_height)
            .fixed(self.exec_app_hash, HASH_BYTES)
            .fixed(self.exec_results_root, HASH_BYTES)
            .finish()
        )

    def hash(self) -> bytes:
        return sha256(self.encode())


def decode_header(data: bytes) -> BlockHeader:
    if len(data) > HEADER_BYTES_MAX:
        raise DecodeError(f"header is {len(data)} bytes, max {HEADER_BYTES_MAX}")
    reader = Reader(data)
    header = _read_header(reader)
    reader.finish("block header")
    return header


def _read_header(reader: Reader) -> BlockHeader:
    version = reader.u8("version")
    if version != BLOCK_VERSION:
        raise DecodeError(f"unknown block version {version}")
    header = BlockHeader(
        chain_id=reader.ascii8("chain_id", max_bytes=limits.chain_id_bytes_max),
        height=reader.u64("height"),
        prev_hash=reader.fixed(HASH_BYTES, "prev_hash"),
        time_ms=reader.u64("time_ms"),
        proposer=reader.fixed(PUBLIC_KEY_BYTES, "proposer"),
        tx_count=reader.u32("tx_count"),
        txs_root=reader.fixed(HASH_BYTES, "txs_root"),
        validators_hash=reader.fixed(HASH_BYTES, "validators_hash"),
        exec_height=reader.u64("exec_height"),
        exec_app_hash=reader.fixed(HASH_BYTES, "exec_app_hash"),
        exec_results_root=reader.fixed(HASH_BYTES, "exec_results_root"),
    )
    if (reason := header.invalid()) is not None:
        raise DecodeError(reason)
    return header


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    header: BlockHeader
    txs: tuple[Tx, ...]
    # Encoded tx bytes, kept so re-encoding and hashing a received block costs nothing.
    tx_bytes: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
    # Memoised derived data (a block is immutable): its hash, its tx hashes, its encoding,
    # the Merkle root of its tx hashes and a passed `invalid()`. Decode, PBFT validation,
    # the durable PBFT/Raft log records, every message that carries the block, execution
    # and the store each needed them, one SHA-256 per tx or one 600 KB join each time.
    # Never compared, never shown. The encoding costs the block's size once more in memory,
    # so the commit pipeline drops it (`release_encoding`) once the block is durable: only
    # blocks in flight, which the engines bound, hold a second copy of their bytes.
    _hash: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _tx_hashes: tuple[bytes, ...] | None = field(
        default=None, init=False, compare=False, repr=False
    )
    _encoded: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _txs_root: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _checked: bool = field(default=False, init=False, compare=False, repr=False)

    @property
    def height(self) -> int:
        return self.header.height

    def hash(self) -> bytes:
        digest = self._hash
        if digest is None:
            digest = self.header.hash()
            object.__setattr__(self, "_hash", digest)
        return digest

    def encoded_txs(self) -> tuple[bytes, ...]:
        if len(self.tx_bytes) == len(self.txs):
            return self.tx_bytes
        return tuple(tx.encode() for tx in self.txs)

    def tx_hashes(self) -> list[bytes]:
        return list(self._tx_hash_tuple())

    def _tx_hash_tuple(self) -> tuple[bytes, ...]:
        """SHA-256 of each encoded tx. A Tx memoises its own hash (the mempool computed it on
        admission, and a decoded tx is shared through the decode memo), so this is usually a
        lookup; a Tx's `encode()` is its exact canonical bytes, hence the same digest."""
        hashes = self._tx_hashes
        if hashes is None:
            if len(self.tx_bytes) == len(self.txs):
                assert all(
                    tx.encode() is raw or tx.encode() == raw
                    for tx, raw in zip(self.txs, self.tx_bytes, strict=True)
                ), "block tx bytes disagree with its txs"
            hashes = tuple(tx.hash() for tx in self.txs)
            object.__setattr__(self, "_tx_hashes", hashes)
        return hashes

    def txs_root(self) -> bytes:
        """The Merkle root of this body's tx hashes (what `header.txs_root` must equal)."""
        root = self._txs_root
        if root is None:
            root = merkle.root(list(self._tx_hash_tuple()))
            object.__setattr__(self, "_txs_root", root)
        return root

    def invalid(self) -> str | None:
        """Header validity plus body/header agreement (count and Merkle root). A block that
        passed once passes again (it is immutable), so that answer is remembered."""
        if self._checked:
            return None
        reason = self._first_problem()
        if reason is None:
            object.__setattr__(self, "_checked", True)
        return reason

    def _first_problem(self) -> str | None:
        if (reason := self.header.invalid()) is not None:
            return reason
        if len(self.txs) != self.header.tx_count:
            return f"header says {self.header.tx_count} txs, body has {len(self.txs)}"
        if self.txs_root() != self.header.txs_root:
            return "txs root does not match the body"
        chain_id = self.header.chain_id
        for tx in self.txs:
            if tx.chain_id != chain_id:
                return "a tx is for another chain"
        return None

    def encode(self) -> bytes:
        """Canonical bytes, built once: every message that carries the block, the durable
        consensus records and the store splice these same bytes."""
        encoded = self._encoded
        if encoded is None:
            encoded = _encode_block(self.header.encode(), self.encoded_txs())
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    def release_encoding(self) -> None:
        """Forget the memoised encoding (a later `encode()` rebuilds the same bytes). Called
        once the block is stored: committed blocks an engine still holds (Raft's retained
        log, PBFT's window) then keep no second copy of ~600 KB each."""
        object.__setattr__(self, "_encoded", None)


def _encode_block(header: bytes, raws: tuple[bytes, ...]) -> bytes:
    """bytes32 header | u32 count | count x bytes32 tx, in one join."""
    pack = _U32.pack
    parts = [pack(len(header)), header, pack(len(raws))]
    for raw in raws:
        parts.append(pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_block(data: bytes) -> Block:
    """Strict decode; also checks that the body matches the header (count and txs root)."""
    if len(data) > limits.block_bytes_max:
        raise DecodeError(f"block is {len(data)} bytes, max {limits.block_bytes_max}")
    if not isinstance(data, _BYTES_LIKE):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)  # no copy when it already is bytes
    reader = Reader(data)
    header_bytes = reader.bytes32("header", max_bytes=HEADER_BYTES_MAX)
    header = decode_header(header_bytes)
    count = reader.u32("tx_count")
    if count != header.tx_count:
        raise DecodeError(f"body has {count} txs, header says {header.tx_count}")
    raws = _split_txs(data, 8 + len(header_bytes), count)
    txs = tuple(map(decode_tx, raws))
    block = Block(header=header, txs=txs, tx_bytes=raws)
    # Decoding was strict, so `data` is the block's canonical encoding and each tx's
    # `encode()` is exactly its raw bytes: seed the memos without re-checking that.
    object.__setattr__(block, "_encoded", data)
    object.__setattr__(block, "_tx_hashes", tuple([tx.hash() for tx in txs]))
    if (reason := block.invalid()) is not None:
        raise DecodeError(reason)
    return block


def _split_txs(data: bytes, offset: int, count: int) -> tuple[bytes, ...]:
    """`count` u32-length-prefixed txs from `offset` to the very end of `data`: the same
    checks and messages as Reader.bytes32 per tx plus Reader.finish, in one tight loop
    (a Reader call and a formatted field name per tx cost more than the slicing)."""
    unpack_from = _U32.unpack_from
    tx_max = limits.tx_bytes_max
    total = len(data)
    raws: list[bytes] = []
    for index in range(count):
        if offset + 4 > total:
            raise DecodeError(
                f"truncated at tx[{index}].length: need 4 bytes, have {total - offset}"
            )
        (size,) = unpack_from(data, offset)
        if size > tx_max:
            raise DecodeError(f"tx[{index}] is {size} bytes, max {tx_max}")
        start = offset + 4
        offset = start + size
        if offset > total:
            raise DecodeError(f"truncated at tx[{index}]: need {size} bytes, have {total - start}")
        raws.append(data[start:offset])
    if offset != total:
        raise DecodeError(f"{total - offset} trailing bytes after block")
    return tuple(raws)


def make_block(
    *,
    chain_id: str,
    height: int,
    prev_hash: bytes,
    time_ms: int,
    proposer: bytes,
    txs: tuple[Tx, ...],
    validators_hash: bytes,
    exec_height: int,
    exec_app_hash: bytes,
    exec_results_root: bytes,
) -> Block:
    raws = tuple(tx.encode() for tx in txs)
    tx_hashes = tuple(tx.hash() for tx in txs)  # memoised by the pool on admission
    txs_root = merkle.root(list(tx_hashes))
    header = BlockHeader(
        chain_id=chain_id,
        height=height,
        prev_hash=prev_hash,
        time_ms=time_ms,
        proposer=proposer,
        tx_count=len(txs),
        txs_root=txs_root,
        validators_hash=validators_hash,
        exec_height=exec_height,
        exec_app_hash=exec_app_hash,
        exec_results_root=exec_results_root,
    )
    block = Block(header=header, txs=txs, tx_bytes=raws)
    # The root above was computed from exactly these txs' hashes: seed the memos so the
    # invariant below and every later user do not hash the body again.
    object.__setattr__(block, "_tx_hashes", tx_hashes)
    object.__setattr__(block, "_txs_root", txs_root)
    assert block.invalid() is None, block.invalid()
    return block
