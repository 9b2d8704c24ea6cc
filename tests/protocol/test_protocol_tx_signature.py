"""A signed tx is tamper-evident: any single bit flipped anywhere in its bytes makes it
either undecodable or fail its signature check. Also domain separation: the same key's
signature over the same payload under another domain never verifies as a tx."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crypto import DOMAIN_COMMIT_VOTE, DOMAIN_RAFT_SEAL, DOMAIN_TX, SigningKey, verify
from protocol.encoding import DecodeError
from protocol.tx import Tx, decode_tx, sign_tx
from tests.protocol.protocol_samples import CHAIN_ID, sample_tx


def _flip_is_caught(encoded: bytes, bit: int) -> bool:
    flipped = bytearray(encoded)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        tx = decode_tx(bytes(flipped))
    except DecodeError:
        return True
    return not tx.verify_signature()


def test_every_single_bit_flip_of_a_signed_tx_is_caught():
    encoded = sample_tx(body=bytes(range(40))).encode()
    assert decode_tx(encoded).verify_signature()
    uncaught = [bit for bit in range(len(encoded) * 8) if not _flip_is_caught(encoded, bit)]
    assert uncaught == []


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(max_size=8),
    nonce=st.integers(min_value=0, max_value=(1 << 64) - 1),
    body=st.binary(max_size=100),
    data=st.data(),
)
def test_random_tx_random_bit_flip_is_caught(secret, nonce, body, data):
    tx = sign_tx(
        SigningKey.from_secret(secret),
        chain_id=CHAIN_ID,
        nonce=nonce,
        expiry_height=5,
        kind="vote.cast",
        body=body,
    )
    encoded = tx.encode()
    bit = data.draw(st.integers(min_value=0, max_value=len(encoded) * 8 - 1))
    assert _flip_is_caught(encoded, bit)


def test_tx_signature_does_not_verify_under_other_domains():
    tx = sample_tx()
    payload = tx.signing_payload()
    assert verify(tx.signer, DOMAIN_TX, payload, tx.signature)
    for domain in (DOMAIN_COMMIT_VOTE, DOMAIN_RAFT_SEAL, b""):
        assert not verify(tx.signer, domain, payload, tx.signature)


def test_signature_from_another_key_fails():
    tx = sample_tx()
    other = SigningKey.from_secret(b"someone else")
    forged = Tx(
        chain_id=tx.chain_id,
        signer=tx.signer,
        nonce=tx.nonce,
        expiry_height=tx.expiry_height,
        kind=tx.kind,
        body=tx.body,
        signature=other.sign(DOMAIN_TX, tx.signing_payload()),
    )
    assert not forged.verify_signature()


def test_verify_never_raises_on_malformed_keys_or_signatures():
    tx = sample_tx()
    payload = tx.signing_payload()
    assert not verify(b"\x00" * 31, DOMAIN_TX, payload, tx.signature)
    assert not verify(b"\xff" * 32, DOMAIN_TX, payload, tx.signature)
    assert not verify(tx.signer, DOMAIN_TX, payload, tx.signature[:63])
    assert not verify(tx.signer, DOMAIN_TX, payload, b"\xff" * 64)


def test_replay_key_is_signer_and_big_endian_nonce():
    tx = sample_tx(nonce=0x0102030405060708)
    assert tx.replay_key == tx.signer + bytes([1, 2, 3, 4, 5, 6, 7, 8])
