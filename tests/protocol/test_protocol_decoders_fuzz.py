"""Decoders as the edge of the node: whatever bytes arrive, a decoder returns an object that
re-encodes to exactly those bytes (so every encoding is canonical) or raises DecodeError;
no other exception escapes. Random bytes rarely get past the first field, so the property
is also run on valid encodings with random mutations (bit flips, splices, cuts), which
reach every field. And every strict prefix of every valid encoding is rejected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.block import decode_block, decode_header
from protocol.encoding import DecodeError
from protocol.merkle import decode_proof, prove
from protocol.proof import decode_any_proof, make_result_proof, make_tx_proof
from protocol.results import decode_results, encode_results
from protocol.seal import decode_seal
from protocol.sealed import decode_sealed_block
from protocol.tx import decode_tx
from tests.protocol.protocol_samples import sample_chain, sample_tx

CHAIN = sample_chain(heights=3, txs_per_block=2)
LEADER_CHAIN = sample_chain(heights=1, txs_per_block=1, leader=True)


def _reencode(decoded: Any) -> bytes:
    if isinstance(decoded, tuple):  # decode_results returns a tuple of TxResult
        return encode_results(decoded)
    encoded = decoded.encode()
    assert isinstance(encoded, bytes)
    return encoded


# (name, decoder, one valid encoding)
DECODERS: list[tuple[str, Callable[[bytes], Any], bytes]] = [
    ("tx", decode_tx, sample_tx(body=b"\x00\xff" * 5).encode()),
    ("header", decode_header, CHAIN.at(3).block.header.encode()),
    ("block", decode_block, CHAIN.at(3).block.encode()),
    ("seal", decode_seal, CHAIN.at(3).seal.encode()),
    ("leader_seal", decode_seal, LEADER_CHAIN.at(1).seal.encode()),
    ("sealed_block", decode_sealed_block, CHAIN.at(2).encode()),
    ("results", decode_results, encode_results(CHAIN.results[1])),
    ("merkle_proof", decode_proof, prove([bytes([i]) * 32 for i in range(5)], 3).encode()),
    ("tx_proof", decode_any_proof, make_tx_proof(CHAIN.at(3), 1).encode()),
    (
        "result_proof",
        decode_any_proof,
        make_result_proof(
            sealed=CHAIN.at(1), results=CHAIN.results[0], index=1, attesting=CHAIN.at(3)
        ).encode(),
    ),
]
IDS = [name for name, _, _ in DECODERS]


def _decodes_canonically_or_rejects(decode: Callable[[bytes], Any], data: bytes) -> None:
    try:
        decoded = decode(data)
    except DecodeError:
        return
    assert _reencode(decoded) == data


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        position = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "set" and data:
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=4))]
        else:
            del data[position:]
    return bytes(data)


@pytest.mark.parametrize(("name", "decode", "valid"), DECODERS, ids=IDS)
def test_valid_sample_decodes_and_reencodes(name, decode, valid):
    assert _reencode(decode(valid)) == valid


@pytest.mark.parametrize(("name", "decode", "valid"), DECODERS, ids=IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_random_bytes_decode_canonically_or_raise_decode_error(name, decode, valid, data):
    _decodes_canonically_or_rejects(decode, data)
    _decodes_canonically_or_rejects(decode, valid[:9] + data)  # a plausible start


@pytest.mark.parametrize(("name", "decode", "valid"), DECODERS, ids=IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_encodings_decode_canonically_or_raise_decode_error(name, decode, valid, data):
    _decodes_canonically_or_rejects(decode, data.draw(mutated(valid)))


@pytest.mark.parametrize(("name", "decode", "valid"), DECODERS, ids=IDS)
def test_every_strict_prefix_is_rejected(name, decode, valid):
    for cut in range(len(valid)):
        with pytest.raises(DecodeError):
            decode(valid[:cut])


def test_no_single_byte_change_of_a_tx_escapes_as_another_exception():
    """Exhaustive over positions and a spread of byte values, not sampled."""
    valid = sample_tx().encode()
    for position in range(len(valid)):
        for value in (0x00, 0x01, 0x2D, 0x41, 0x7F, 0x80, 0xFF):
            mutated_bytes = bytearray(valid)
            mutated_bytes[position] = value
            _decodes_canonically_or_rejects(decode_tx, bytes(mutated_bytes))
