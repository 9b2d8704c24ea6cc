"""Pure wire-level units: framing decoder, sealed sessions, records, handshake, limiters.
No sockets: these run in the fast tier."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
)
from nacl.signing import SigningKey

from p2p.backoff import BanList, backoff_delay_s
from p2p.errors import (
    AuthenticationError,
    FrameError,
    FrameTooLarge,
    FrameTruncated,
    HandshakeError,
    P2PError,
)
from p2p.framing import FrameDecoder, encode_frame
from p2p.handshake import Handshake, HandshakeResult, hkdf_sha256
from p2p.ratelimit import TokenBucket
from p2p.secure import SecureSession, decode_records, encode_records
from tests.p2p.p2p_helpers import CHAIN_ID, public_key, signing_key

# --- framing ---


def test_decoder_returns_frames_split_across_arbitrary_chunks() -> None:
    frames = [b"", b"a", b"hello" * 100, bytes(range(256))]
    stream = b"".join(encode_frame(f) for f in frames)
    for chunk_size in (1, 3, 7, 64, len(stream)):
        decoder = FrameDecoder(frame_bytes_max=1024)
        out: list[bytes] = []
        for i in range(0, len(stream), chunk_size):
            out.extend(decoder.feed(stream[i : i + chunk_size]))
        decoder.eof()
        assert out == frames
        assert decoder.buffered_bytes == 0


def test_decoder_rejects_oversized_prefix_before_body_arrives() -> None:
    decoder = FrameDecoder(frame_bytes_max=100)
    assert decoder.feed(encode_frame(bytes(100))) == [bytes(100)]
    with pytest.raises(FrameTooLarge):
        decoder.feed((101).to_bytes(4, "big"))  # only the prefix: no body was ever sent
    with pytest.raises(FrameTooLarge):
        FrameDecoder(frame_bytes_max=100).feed(b"\x80\x00\x00\x00")


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 9])
def test_decoder_reports_truncation_at_eof(cut: int) -> None:
    decoder = FrameDecoder(frame_bytes_max=100)
    assert decoder.feed(encode_frame(b"123456")[:cut]) == []
    with pytest.raises(FrameTruncated):
        decoder.eof()


def test_decoder_bounds_frames_per_feed() -> None:
    decoder = FrameDecoder(frame_bytes_max=100, frames_per_feed_max=10)
    with pytest.raises(FrameError):
        decoder.feed(encode_frame(b"") * 20)


# --- sealed session and records ---


def session_pair() -> tuple[SecureSession, SecureSession]:
    key_1, key_2 = bytes([1]) * 32, bytes([2]) * 32
    return (
        SecureSession(send_key=key_1, receive_key=key_2),
        SecureSession(send_key=key_2, receive_key=key_1),
    )


def test_session_round_trip_in_both_directions() -> None:
    alice, bob = session_pair()
    for i in range(5):
        assert bob.open(alice.seal(b"a%d" % i)) == b"a%d" % i
        assert alice.open(bob.seal(b"b%d" % i)) == b"b%d" % i


def test_session_bytes_are_pynacl_public_chacha20_poly1305_with_counter_nonces() -> None:
    """SecureSession calls libsodium directly; its bytes must be the public API's."""
    send_key, receive_key = bytes([1]) * 32, bytes([2]) * 32
    alice = SecureSession(send_key=send_key, receive_key=receive_key)
    bob = SecureSession(send_key=receive_key, receive_key=send_key)
    for counter, size in enumerate((0, 1, 165, 70_000)):
        plaintext = os.urandom(size)
        nonce = counter.to_bytes(12, "big")
        expected = crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, None, nonce, send_key)
        sealed = alice.seal_buffer(plaintext) if counter % 2 else alice.seal(plaintext)
        assert sealed == expected
        opened = bob.open_buffer(sealed) if counter % 2 else bob.open(bytes(sealed))
        assert opened == plaintext
        assert (
            crypto_aead_chacha20poly1305_ietf_decrypt(bytes(sealed), None, nonce, send_key)
            == opened
        )


def test_session_rejects_replay_reorder_bitflip_truncation_and_reflection() -> None:
    alice, bob = session_pair()
    first, second = alice.seal(b"one"), alice.seal(b"two")
    with pytest.raises(AuthenticationError):
        bob.open(second)  # reordered: wrong nonce
    assert bob.open(first) == b"one"
    with pytest.raises(AuthenticationError):
        bob.open(first)  # replayed
    flipped = bytearray(second)
    flipped[0] ^= 0x80
    with pytest.raises(AuthenticationError):
        bob.open(bytes(flipped))
    with pytest.raises(AuthenticationError):
        bob.open(second[:-1])
    with pytest.raises(AuthenticationError):
        bob.open(b"short")
    with pytest.raises(AuthenticationError):
        alice.open(alice.seal(b"reflected"))  # own frame sent back: other direction's key
    assert bob.open(second) == b"two"  # failures did not advance the counter


def test_records_round_trip_and_reject_malformed() -> None:
    records = [(1, b"x" * 300), (2, b""), (255, b"last")]
    assert decode_records(encode_records(records), records_max=10) == records
    packed = encode_records(records)
    for cut in range(1, len(packed)):
        try:
            decoded = decode_records(packed[:cut], records_max=10)
        except FrameError:
            continue
        assert decoded == records[: len(decoded)]  # a cut on a record boundary
    with pytest.raises(FrameError):
        decode_records(b"", records_max=10)
    with pytest.raises(FrameError):
        decode_records(encode_records([(1, b"")] * 11), records_max=10)


# --- handshake ---


def handshake(index: int, *, allowed: set[int], secret: int | None = None) -> Handshake:
    keys = {public_key(i) for i in allowed}
    return Handshake(
        signing_key=signing_key(index),
        chain_id=CHAIN_ID,
        is_allowed=keys.__contains__,
        ephemeral_secret=None if secret is None else bytes([secret]) * 32,
    )


def complete(a: Handshake, b: Handshake) -> tuple[HandshakeResult, HandshakeResult]:
    auth_a, auth_b = a.on_hello(b.hello()), b.on_hello(a.hello())
    return a.on_auth(auth_b), b.on_auth(auth_a)


def test_handshake_authenticates_both_sides_and_keys_both_directions() -> None:
    result_a, result_b = complete(handshake(0, allowed={1}), handshake(1, allowed={0}))
    assert result_a.peer_public_key == public_key(1)
    assert result_b.peer_public_key == public_key(0)
    assert result_b.session.open(result_a.session.seal(b"ping")) == b"ping"
    assert result_a.session.open(result_b.session.seal(b"pong")) == b"pong"


def test_handshake_refuses_unknown_key_self_and_wrong_chain() -> None:
    with pytest.raises(HandshakeError) as refused:
        complete(handshake(0, allowed={1}), handshake(5, allowed={0}))
    assert refused.value.reason == "unknown_key"
    with pytest.raises(HandshakeError) as self_connect:
        complete(handshake(0, allowed={0}), handshake(0, allowed={0}))
    assert self_connect.value.reason == "self"
    other_chain = Handshake(
        signing_key=signing_key(1), chain_id="other-chain", is_allowed=lambda _k: True
    )
    mine = handshake(0, allowed={1})
    auth_other = other_chain.on_hello(mine.hello())
    mine.on_hello(other_chain.hello())
    with pytest.raises(AuthenticationError):
        mine.on_auth(auth_other)  # different transcript, so different keys


def test_handshake_refuses_signature_over_another_transcript() -> None:
    """A man in the middle relaying a signed AUTH from another session fails the check."""
    victim = handshake(0, allowed={1}, secret=9)
    honest_peer = handshake(1, allowed={0}, secret=10)
    other_session = handshake(0, allowed={1}, secret=11)
    relayed_auth = honest_peer.on_hello(other_session.hello())  # signed for another transcript
    victim.on_hello(honest_peer.hello())
    with pytest.raises(P2PError):
        victim.on_auth(relayed_auth)


def test_handshake_refuses_reflected_hello_and_low_order_point() -> None:
    mine = handshake(0, allowed={1})
    with pytest.raises(HandshakeError) as reflected:
        mine.on_hello(mine.hello())
    assert reflected.value.reason == "self"
    low_order = b"SCP2" + (1).to_bytes(2, "big") + bytes(32)
    with pytest.raises(HandshakeError):
        handshake(0, allowed={1}).on_hello(low_order)
    with pytest.raises(HandshakeError) as version:
        handshake(0, allowed={1}).on_hello(b"SCP2" + (2).to_bytes(2, "big") + bytes([9]) * 32)
    assert version.value.reason == "bad_version"


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    okm = hkdf_sha256(
        ikm=bytes([0x0B]) * 22,
        salt=bytes(range(13)),
        info=bytes(range(0xF0, 0xFA)),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# --- fuzz: random bytes never raise anything but P2PError ---


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8), st.integers(1, 200))
def test_random_streams_into_decoder_raise_only_p2p_errors(
    chunks: list[bytes], frame_bytes_max: int
) -> None:
    decoder = FrameDecoder(frame_bytes_max=frame_bytes_max)
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                assert len(frame) <= frame_bytes_max
                if frame:
                    decode_records(frame, records_max=100)
        decoder.eof()
    except P2PError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.binary(max_size=140), st.booleans())
def test_random_handshake_messages_raise_only_p2p_errors(
    hello: bytes, auth: bytes, use_valid_hello: bool
) -> None:
    mine = handshake(0, allowed={1})
    peer = handshake(1, allowed={0})
    try:
        mine.on_hello(peer.hello() if use_valid_hello else hello)
        mine.on_auth(auth)
    except P2PError:
        return
    raise AssertionError("random bytes completed a handshake")


# --- limiters ---


def test_token_bucket_allows_burst_then_refills_at_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_s=10, burst=5, clock=lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 100
    assert sum(bucket.take() for _ in range(10)) == 5  # never above burst


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(7)
    delays = [backoff_delay_s(attempt=a, base_s=0.1, max_s=2.0, rng=rng) for a in range(1, 10)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay < ceiling
    assert backoff_delay_s(attempt=10_000, base_s=0.1, max_s=2.0, rng=rng) < 2.0


def test_ban_doubles_per_offence_up_to_the_cap() -> None:
    bans = BanList(base_s=1.0, max_s=5.0)
    key = bytes(SigningKey(bytes(32)).verify_key)
    assert bans.remaining_s(key, now=0.0) == 0.0
    assert [bans.ban(key, now=0.0) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert bans.remaining_s(key, now=3.0) == 2.0
