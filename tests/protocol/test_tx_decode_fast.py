"""The fast tx decode path agrees with the field-by-field Reader on every input: for any
bytes, `_parse_fast` either returns exactly the Reader's fields or declines (None), and it
never accepts what the Reader refuses. Mutations of valid encodings (flips, cuts, splices,
length-prefix edits) reach every field. Also: the memoised signing payload, hash and replay
key are what re-encoding gives, and the slot-built Tx equals the constructor-built one."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import tx as tx_module
from protocol.crypto import DOMAIN_TX, SigningKey, sha256, verify
from protocol.encoding import DecodeError
from protocol.tx import Tx, decode_tx, sign_tx

KEY = SigningKey.from_secret(b"fast-decode")


def valid(body: bytes = b"\x81\xa1a\x01", *, chain: str = "seoul-test", kind: str = "x.y") -> bytes:
    return sign_tx(KEY, chain_id=chain, nonce=7, expiry_height=99, kind=kind, body=body).encode()


SAMPLES = [valid(), valid(b""), valid(bytes(300), chain="c", kind="notary.anchor")]


def reader_verdict(data: bytes) -> object:
    try:
        return tx_module._parse_with_reader(data)
    except DecodeError:
        return "refused"


def assert_agrees(data: bytes) -> None:
    fast = tx_module._parse_fast(data)
    if fast is not None:
        assert fast == reader_verdict(data), "fast path accepted differently from the Reader"
        # _decode_tx_uncached skips Tx.invalid on the fast path: it must never need it.
        tx = tx_module._build_decoded(fast, data)
        assert tx.invalid() is None
        # The replay key is sliced from the encoding: it must be signer || u64 nonce.
        assert tx.replay_key == tx.signer + tx.nonce.to_bytes(8, "big")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SAMPLES),
    position=st.integers(min_value=0, max_value=400),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=400),
    extra=st.binary(max_size=8),
)
def test_fast_path_never_disagrees_with_the_reader(
    sample: bytes, position: int, value: int, cut: int, extra: bytes
) -> None:
    flipped = bytearray(sample)
    flipped[position % len(sample)] = value
    for data in (bytes(flipped), sample[:cut], sample + extra, sample[:cut] + extra):
        assert_agrees(data)


@given(data=st.binary(max_size=400))
def test_random_bytes_agree(data: bytes) -> None:
    assert_agrees(data)


def test_every_header_byte_set_to_edge_values_agrees() -> None:
    """Deterministic sweep over the fields before the body: every byte of the version,
    length prefixes, chain id, signer, nonce, expiry and kind, set to edge values."""
    for sample in SAMPLES:
        for position in range(min(len(sample), 120)):
            for value in (0x00, 0x01, 0x7F, 0x80, 0xFF):
                data = bytearray(sample)
                data[position] = value
                assert_agrees(bytes(data))


def test_length_prefix_edits_are_declined_or_refused() -> None:
    sample = SAMPLES[0]
    chain_length_at = 1
    for chain_length in (0, 9, 11, 51, 255):
        data = bytearray(sample)
        data[chain_length_at] = chain_length
        assert_agrees(bytes(data))
    body_length_at = len(sample) - 64 - 4 - 4  # body is 4 bytes, then the signature
    for body_length in (0, 3, 5, 65_537, 2**32 - 1):
        data = bytearray(sample)
        struct.pack_into(">I", data, body_length_at, body_length)
        assert_agrees(bytes(data))
        assert tx_module._parse_fast(bytes(data)) is None


def test_valid_samples_take_the_fast_path() -> None:
    for sample in SAMPLES:
        assert tx_module._parse_fast(sample) == tx_module._parse_with_reader(sample)


def test_non_ascii_names_are_refused_with_the_readers_message() -> None:
    data = bytearray(SAMPLES[0])
    data[2] = 0xC3
    with pytest.raises(DecodeError, match="chain_id is not ASCII"):
        decode_tx(bytes(data))
    data = bytearray(SAMPLES[0])
    data[2 + len("seoul-test") + 32 + 16 + 1] = 0xC3  # first byte of the kind
    with pytest.raises(DecodeError, match="kind is not ASCII"):
        decode_tx(bytes(data))


def test_invalid_names_take_the_reader_path_and_get_its_message() -> None:
    """Valid ASCII that Tx.invalid refuses (an empty chain id, a capital in the kind) is
    declined by the fast path and refused with Tx.invalid's own reason."""
    for chain, kind, message in (("c", "Bad", "kind may use only"), ("", "x.y", "chain id must")):
        data = bytearray(valid(chain="c", kind="x.y"))
        if chain == "":  # drop the one chain id byte and its length
            data = bytearray(data[:1]) + b"\x00" + data[3:]
        else:
            kind_at = 2 + len(chain) + 32 + 16 + 1
            data[kind_at : kind_at + 3] = kind.encode()
        assert tx_module._parse_fast(bytes(data)) is None
        with pytest.raises(DecodeError, match=message):
            decode_tx(bytes(data))


def test_the_table_of_valid_names_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tx_module, "_VALID_NAMES", {})
    monkeypatch.setattr(tx_module, "_VALID_NAMES_MAX", 2)
    kinds = ["k.a", "k.b", "k.c", "k.d"]
    for kind in kinds:
        raw = valid(kind=kind)
        assert tx_module._parse_fast(raw) == tx_module._parse_with_reader(raw)
    assert len(tx_module._VALID_NAMES) == 2, "new names past the bound are checked, not kept"


def test_a_given_digest_is_memoised_as_the_hash() -> None:
    raw = valid(b"digest given")
    digest = sha256(raw)
    tx = decode_tx(raw, digest=digest)
    assert tx.hash() is digest
    assert decode_tx(raw) is tx, "the same object from the memo, hash included"


def test_decoded_tx_equals_constructed_and_memos_match_reencoding() -> None:
    raw = SAMPLES[2]
    decoded = tx_module._decode_tx_uncached(raw)
    built = Tx(
        chain_id=decoded.chain_id,
        signer=decoded.signer,
        nonce=decoded.nonce,
        expiry_height=decoded.expiry_height,
        kind=decoded.kind,
        body=decoded.body,
        signature=decoded.signature,
    )
    assert decoded == built
    assert hash(decoded) == hash(built)
    assert decoded.signing_payload() == built.signing_payload() == raw[:-64]
    assert decoded.encode() == built.encode() == raw
    assert decoded.hash() == built.hash() == sha256(raw)
    assert decoded.replay_key == built.replay_key == KEY.public_key + (7).to_bytes(8, "big")
    assert decoded.replay_key is decoded.replay_key, "memoised"
    assert verify(KEY.public_key, DOMAIN_TX, decoded.signing_payload(), decoded.signature)
    assert decoded.verify_signature()


def test_tampered_signature_still_fails_with_the_sliced_payload() -> None:
    data = bytearray(SAMPLES[0])
    data[-1] ^= 1
    assert not decode_tx(bytes(data)).verify_signature()
    body_byte = len(data) - 64 - 1
    data = bytearray(SAMPLES[0])
    data[body_byte] ^= 1
    assert not decode_tx(bytes(data)).verify_signature()
