"""Every protocol object survives encode -> decode unchanged, including random ones drawn
by hypothesis, and decoders reject trailing bytes, wrong versions and non-ASCII strings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import limits
from protocol.block import decode_block, decode_header
from protocol.crypto import SigningKey
from protocol.encoding import DecodeError, Reader
from protocol.merkle import decode_proof, prove
from protocol.proof import decode_any_proof, make_result_proof, make_tx_proof
from protocol.results import TxResult, decode_result, decode_results, encode_results
from protocol.seal import decode_seal
from protocol.sealed import decode_sealed_block
from protocol.tx import decode_tx, sign_tx
from tests.protocol.protocol_samples import CHAIN_ID, sample_chain, sample_tx

CHAIN = sample_chain(heights=3)

chain_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=50)
kinds = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.", min_size=1, max_size=64)
u64s = st.integers(min_value=0, max_value=(1 << 64) - 1)


@settings(max_examples=60, deadline=None)
@given(
    chain_id=chain_ids,
    nonce=u64s,
    expiry=u64s,
    kind=kinds,
    body=st.binary(max_size=300),
    secret=st.binary(max_size=8),
)
def test_any_valid_tx_round_trips_and_verifies(chain_id, nonce, expiry, kind, body, secret):
    tx = sign_tx(
        SigningKey.from_secret(secret),
        chain_id=chain_id,
        nonce=nonce,
        expiry_height=expiry,
        kind=kind,
        body=body,
    )
    encoded = tx.encode()
    decoded = decode_tx(encoded)
    assert decoded == tx
    assert decoded.encode() == encoded
    assert decoded.verify_signature()
    assert decoded.hash() == tx.hash()


def test_block_header_seal_and_sealed_block_round_trip():
    sealed = CHAIN.at(3)
    block = sealed.block
    assert decode_header(block.header.encode()) == block.header
    decoded_block = decode_block(block.encode())
    assert decoded_block == block
    assert decoded_block.encode() == block.encode()
    assert decode_seal(sealed.seal.encode()) == sealed.seal
    decoded_sealed = decode_sealed_block(sealed.encode())
    assert decoded_sealed == sealed
    assert decoded_sealed.encode() == sealed.encode()
    assert decoded_sealed.invalid_for(CHAIN.validators) is None


def test_empty_block_round_trips():
    empty = sample_chain(heights=1, txs_per_block=0).at(1)
    assert decode_sealed_block(empty.encode()) == empty


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            TxResult,
            code=st.integers(min_value=0, max_value=(1 << 32) - 1),
            log=st.text(max_size=50),
            data=st.binary(max_size=50),
        ),
        max_size=8,
    )
)
def test_results_round_trip(results):
    encoded = encode_results(results)
    assert decode_results(encoded) == tuple(results)
    assert encode_results(decode_results(encoded)) == encoded


def test_over_long_result_log_is_cut_on_a_character_boundary():
    """A 3-byte character straddling the 1 KiB cut must not leave half a character."""
    result = TxResult(code=1, log="가" * 500, data=b"x" * 5000)
    reader = Reader(result.encode())
    decoded = decode_result(reader)
    assert reader.remaining == 0
    assert decoded.log == "가" * (limits.results_data_bytes_max // 3)
    assert decoded.data == b"x" * limits.results_data_bytes_max
    assert decoded.encode() == result.encode()


def test_result_log_with_lone_surrogate_still_encodes():
    assert decode_results(encode_results([TxResult(code=0, log="a\ud800b")]))[0].log == "a?b"


@pytest.mark.parametrize("total", [1, 2, 3, 7, 64, 100])
def test_merkle_proof_round_trips(total):
    items = [bytes([i]) * 32 for i in range(total)]
    for index in (0, total // 2, total - 1):
        proof = prove(items, index)
        assert decode_proof(proof.encode()) == proof


def test_tx_and_result_proofs_round_trip():
    tx_proof = make_tx_proof(CHAIN.at(2), 1)
    assert decode_any_proof(tx_proof.encode()) == tx_proof
    result_proof = make_result_proof(
        sealed=CHAIN.at(1), results=CHAIN.results[0], index=2, attesting=CHAIN.at(3)
    )
    assert decode_any_proof(result_proof.encode()) == result_proof


def test_trailing_byte_is_rejected_by_every_decoder():
    sealed = CHAIN.at(3)
    cases: list[tuple[Callable[[bytes], object], bytes]] = [
        (decode_tx, sample_tx().encode()),
        (decode_header, sealed.block.header.encode()),
        (decode_block, sealed.block.encode()),
        (decode_seal, sealed.seal.encode()),
        (decode_sealed_block, sealed.encode()),
        (decode_results, encode_results(CHAIN.results[0])),
        (decode_proof, prove([b"a" * 32, b"b" * 32], 1).encode()),
        (decode_any_proof, make_tx_proof(sealed, 0).encode()),
    ]
    for decode, encoded in cases:
        decode(encoded)
        with pytest.raises(DecodeError, match="trailing"):
            decode(encoded + b"\x00")


def test_wrong_versions_are_rejected():
    tx = bytearray(sample_tx().encode())
    tx[0] = 2
    with pytest.raises(DecodeError, match="version"):
        decode_tx(bytes(tx))
    header = bytearray(CHAIN.at(1).block.header.encode())
    header[0] = 0
    with pytest.raises(DecodeError, match="version"):
        decode_header(bytes(header))
    seal = bytearray(CHAIN.at(1).seal.encode())
    seal[0] = 3
    with pytest.raises(DecodeError, match="kind"):
        decode_seal(bytes(seal))
    proof = bytearray(make_tx_proof(CHAIN.at(1), 0).encode())
    proof[0] = 9
    with pytest.raises(DecodeError, match="version"):
        decode_any_proof(bytes(proof))


def test_non_ascii_and_out_of_alphabet_chain_ids_are_rejected():
    encoded = sample_tx().encode()
    chain_at = 2  # after version and the chain id's length byte
    assert encoded[chain_at : chain_at + len(CHAIN_ID)] == CHAIN_ID.encode()
    for bad in (0xC3, 0x80, ord("A"), ord(" ")):
        mutated = bytearray(encoded)
        mutated[chain_at] = bad
        with pytest.raises(DecodeError, match=r"chain id|ASCII"):
            decode_tx(bytes(mutated))


def test_bad_length_prefix_is_rejected():
    encoded = bytearray(sample_tx().encode())
    encoded[1] = limits.chain_id_bytes_max + 1
    with pytest.raises(DecodeError):
        decode_tx(bytes(encoded))


def test_decoders_reject_non_bytes():
    with pytest.raises(DecodeError, match="expected bytes"):
        decode_tx("not bytes")  # type: ignore[arg-type]
