"""The block's memoised encoding and hashes, its fast tx splitter, and result encoding: the
same bytes and the same errors as the plain definitions they replace."""

from __future__ import annotations

import hashlib
import struct

import pytest

from protocol import limits, merkle
from protocol.block import Block, decode_block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.encoding import DecodeError, Writer
from protocol.results import TxResult, decode_results, encode_results, results_root
from protocol.tx import Tx, sign_tx

CHAIN = "memo-chain"
KEY = SigningKey(hashlib.sha256(b"memo key").digest())


def _txs(count: int, tag: bytes = b"") -> tuple[Tx, ...]:
    return tuple(
        sign_tx(
            KEY,
            chain_id=CHAIN,
            nonce=index,
            expiry_height=99,
            kind="notary.anchor",
            body=tag + b"body %d" % index,
        )
        for index in range(count)
    )


def _block(txs: tuple[Tx, ...]) -> Block:
    return make_block(
        chain_id=CHAIN,
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=5,
        proposer=KEY.public_key,
        txs=txs,
        validators_hash=b"\x07" * 32,
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )


def _plain_encoding(block: Block) -> bytes:
    """The layout of docs/PROTOCOL.md written field by field, with no memo."""
    writer = Writer().bytes32(block.header.encode()).u32(len(block.txs))
    for tx in block.txs:
        writer.bytes32(tx.encode())
    return writer.finish()


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 64])
def test_memoised_encoding_and_hashes_match_the_plain_definitions(count: int) -> None:
    block = _block(_txs(count))
    raws = [tx.encode() for tx in block.txs]
    assert block.encode() == _plain_encoding(block)
    assert block.encode() is block.encode()  # built once
    assert block.tx_hashes() == [hashlib.sha256(raw).digest() for raw in raws]
    assert block.header.txs_root == merkle.root([hashlib.sha256(raw).digest() for raw in raws])
    decoded = decode_block(block.encode())
    assert decoded == block
    assert decoded.hash() == block.hash()
    assert decoded.tx_hashes() == block.tx_hashes()


def test_decoded_block_reencodes_to_the_received_bytes_without_copying() -> None:
    data = _block(_txs(5)).encode()
    copy = bytes(bytearray(data))  # equal bytes, another object
    decoded = decode_block(copy)
    assert decoded.encode() is copy


def test_bytearray_and_memoryview_decode_like_bytes_and_other_types_do_not() -> None:
    data = _block(_txs(3)).encode()
    from_bytearray = decode_block(bytearray(data))  # type: ignore[arg-type]
    from_view = decode_block(memoryview(data))  # type: ignore[arg-type]
    assert from_bytearray == from_view == decode_block(data)
    with pytest.raises(DecodeError, match="expected bytes"):
        decode_block("not bytes")  # type: ignore[arg-type]


def test_block_without_tx_bytes_encodes_its_txs() -> None:
    built = _block(_txs(4))
    bare = Block(header=built.header, txs=built.txs)
    assert bare.invalid() is None
    assert bare.encode() == built.encode()


def test_tx_bytes_that_disagree_with_the_txs_break_an_invariant() -> None:
    built = _block(_txs(3))
    other = _txs(3, tag=b"other ")
    mixed = Block(header=built.header, txs=other, tx_bytes=built.tx_bytes)
    with pytest.raises(AssertionError, match="disagree"):
        mixed.invalid()


def test_a_body_that_does_not_match_its_root_is_refused_every_time() -> None:
    built = _block(_txs(3))
    wrong = Block(header=built.header, txs=_txs(3, tag=b"x"))
    assert wrong.invalid() == "txs root does not match the body"
    assert wrong.invalid() == "txs root does not match the body"


def _body_prefix(block: Block, count: int) -> bytes:
    header = block.header.encode()
    return struct.pack(">I", len(header)) + header + struct.pack(">I", count)


def test_tx_splitter_reports_each_kind_of_bad_body() -> None:
    block = _block(_txs(2))
    prefix = _body_prefix(block, 2)
    first, second = (tx.encode() for tx in block.txs)
    framed_first = struct.pack(">I", len(first)) + first
    cases = {
        "truncated at tx\\[0\\].length": prefix + b"\x00\x00",
        "truncated at tx\\[1\\].length": prefix + framed_first,
        "truncated at tx\\[1\\]: need": prefix + framed_first + struct.pack(">I", len(second)),
        f"tx\\[1\\] is {limits.tx_bytes_max + 1} bytes, max": prefix
        + framed_first
        + struct.pack(">I", limits.tx_bytes_max + 1),
        "1 trailing bytes after block": block.encode() + b"\x00",
    }
    for pattern, data in cases.items():
        with pytest.raises(DecodeError, match=pattern):
            decode_block(data)


def test_results_encoding_matches_the_field_layout() -> None:
    results = [
        TxResult(code=0, log="anchored", data=b"\x01" * 32),
        TxResult(code=7, log="é" * 600, data=b"\x02" * 2000),  # both cut to the limit
        TxResult(code=2**32 - 1),
    ]
    for result in results:
        log = result.log.encode()[: limits.results_data_bytes_max]
        while True:
            try:
                log.decode()
                break
            except UnicodeDecodeError:
                log = log[:-1]
        data = result.data[: limits.results_data_bytes_max]
        expected = Writer().u32(result.code).u16(len(log)).raw(log).bytes32(data).finish()
        assert result.encode() == expected
        assert result.encode() is result.encode()
        assert result.hash() == hashlib.sha256(expected).digest()
    encoded = encode_results(results)
    assert encoded == struct.pack(">I", 3) + b"".join(result.encode() for result in results)
    assert [r.code for r in decode_results(encoded)] == [0, 7, 2**32 - 1]
    assert results_root(results) == merkle.root([r.hash() for r in results])
    assert TxResult(code=1, log="a") == TxResult(code=1, log="a")  # the memo is not compared


def test_released_encoding_is_rebuilt_identically() -> None:
    block = _block(_txs(6))
    first = block.encode()
    block.release_encoding()
    again = block.encode()
    assert again == first
    assert again is not first
    decoded = decode_block(first)
    decoded.release_encoding()
    assert decoded.encode() == first
