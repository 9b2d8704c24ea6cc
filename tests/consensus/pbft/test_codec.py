"""PbftCodec: canonical round trips, strict decoding, and signature checks at the edge."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.pbft import durable
from consensus.pbft import messages as m
from consensus.pbft.codec import _write_vote
from consensus.types import NodeId
from protocol.encoding import DecodeError, Writer
from tests.consensus.pbft.pbft_harness import CHAIN_ID, Router

_ROUTER = Router(4, checkpoint_interval=2, window=8)  # the codec the samples were made for


def _sample_messages() -> list[m.PbftMessage]:
    """One real message of every type, certificates included, from a short run."""
    router = Router(4, checkpoint_interval=2, window=8)
    router.run_blocks(2)
    router.drop = lambda source, target, message: isinstance(message, m.Commit)
    router.propose(0)
    router.deliver_all()
    for index in (1, 2, 3):
        router.engine(index).request_height = 4
    router.crash(0)
    router.tick(40)
    seen: dict[type, m.PbftMessage] = {}
    for _, _, message in router.delivered:
        assert isinstance(
            message, m.PrePrepare | m.Prepare | m.Commit | m.Checkpoint | m.ViewChange | m.NewView
        )
        if isinstance(message, m.ViewChange) and not message.prepared:
            continue
        seen.setdefault(type(message), message)
    assert set(seen) == {m.PrePrepare, m.Prepare, m.Commit, m.Checkpoint, m.ViewChange, m.NewView}
    return list(seen.values())


SAMPLES = _sample_messages()


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_every_message_type_round_trips_and_verifies(message: m.PbftMessage) -> None:
    codec = _ROUTER.codec
    data = codec.encode(message)
    decoded = codec.decode(data)
    assert decoded == message
    assert codec.encode(decoded) == data
    assert codec.invalid(decoded, NodeId(message.replica)) is None


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_every_truncation_and_trailing_byte_is_rejected(message: m.PbftMessage) -> None:
    codec = _ROUTER.codec
    data = codec.encode(message)
    step = max(1, len(data) // 400)  # every prefix of small messages, a dense sample of big ones
    for cut in range(0, len(data), step):
        with pytest.raises(DecodeError):
            codec.decode(data[:cut])
    with pytest.raises(DecodeError):
        codec.decode(data + b"\x00")


@pytest.mark.parametrize(
    "message",
    [s for s in SAMPLES if isinstance(s, m.Prepare | m.Commit | m.Checkpoint | m.PrePrepare)],
    ids=lambda message: type(message).__name__,
)
def test_every_byte_flip_is_rejected_by_decode_or_signature_check(message: m.PbftMessage) -> None:
    codec = _ROUTER.codec
    data = codec.encode(message)
    step = max(1, len(data) // 300)
    for position in range(0, len(data), step):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        try:
            decoded = codec.decode(bytes(flipped))
        except DecodeError:
            continue
        assert isinstance(decoded, m.PrePrepare | m.Prepare | m.Commit | m.Checkpoint)
        assert codec.invalid(decoded, NodeId(decoded.replica)) is not None, position


@settings(max_examples=60, deadline=None)
@given(
    view=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    digest=st.binary(min_size=32, max_size=32),
    replica=st.integers(0, 2**16 - 1),
    signature=st.binary(min_size=64, max_size=64),
    commit=st.booleans(),
)
def test_vote_round_trip_for_any_field_values(
    view: int, seq: int, digest: bytes, replica: int, signature: bytes, commit: bool
) -> None:
    kind = m.Commit if commit else m.Prepare
    message = kind(view=view, seq=seq, digest=digest, replica=replica, signature=signature)
    data = _ROUTER.codec.encode(message)
    assert _ROUTER.codec.decode(data) == message
    # Votes are packed in one struct call: the bytes are the documented field layout.
    writer = Writer().u8(m.TAG_COMMIT if commit else m.TAG_PREPARE)
    _write_vote(writer, message)
    assert data == writer.finish()


@pytest.mark.parametrize("tag", [0, 1, 4, 5, 6, 7, 255])
def test_a_message_of_a_votes_size_with_another_tag_is_decoded_as_that_tag(tag: int) -> None:
    with pytest.raises(DecodeError):
        _ROUTER.codec.decode(bytes([tag]) + bytes(114))


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=300))
def test_decode_of_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        _ROUTER.codec.decode(data)


def test_invalid_rejects_a_message_relayed_under_another_sender() -> None:
    prepare = next(s for s in SAMPLES if isinstance(s, m.Prepare))
    assert _ROUTER.codec.invalid(prepare, NodeId((prepare.replica + 1) % 4)) is not None


def test_invalid_rejects_pre_prepare_not_from_the_primary() -> None:
    pre_prepare = next(s for s in SAMPLES if isinstance(s, m.PrePrepare))
    forged = m.sign_message(
        _ROUTER.keys[1], CHAIN_ID, replace(pre_prepare, replica=1, view=pre_prepare.view)
    )
    assert forged.view % 4 != 1
    assert "primary" in (_ROUTER.codec.invalid(forged, NodeId(1)) or "")


def test_invalid_checks_nested_certificate_signatures_in_view_change() -> None:
    view_change = next(s for s in SAMPLES if isinstance(s, m.ViewChange))
    certificate = view_change.prepared[0]
    bad_prepare = replace(certificate.prepares[0], signature=bytes(64))
    bad = replace(
        view_change,
        prepared=(
            replace(certificate, prepares=(bad_prepare, *certificate.prepares[1:])),
            *view_change.prepared[1:],
        ),
    )
    resigned = m.sign_message(_ROUTER.keys[bad.replica], CHAIN_ID, bad)
    reason = _ROUTER.codec.invalid(resigned, NodeId(bad.replica))
    assert reason is not None
    assert "signature" in reason


def test_invalid_rejects_certificate_short_of_a_quorum() -> None:
    view_change = next(s for s in SAMPLES if isinstance(s, m.ViewChange))
    certificate = view_change.prepared[0]
    short = replace(certificate, prepares=certificate.prepares[:1])
    bad = replace(view_change, prepared=(short, *view_change.prepared[1:]))
    resigned = m.sign_message(_ROUTER.keys[bad.replica], CHAIN_ID, bad)
    assert "prepares" in (_ROUTER.codec.invalid(resigned, NodeId(bad.replica)) or "")


def test_commit_signature_domain_differs_from_prepare_domain() -> None:
    # A PREPARE signature can never be replayed as a COMMIT (seal vote) or vice versa.
    prepare = next(s for s in SAMPLES if isinstance(s, m.Prepare))
    as_commit = m.Commit(
        view=prepare.view,
        seq=prepare.seq,
        digest=prepare.digest,
        replica=prepare.replica,
        signature=prepare.signature,
    )
    assert _ROUTER.codec.invalid(as_commit, NodeId(prepare.replica)) is not None


def test_invalid_rejects_messages_from_non_validators() -> None:
    # Only genesis validators take part; an unknown index is rejected at the edge.
    prepare = next(s for s in SAMPLES if isinstance(s, m.Prepare))
    outsider = replace(prepare, replica=7)
    assert "not a validator" in (_ROUTER.codec.invalid(outsider, NodeId(7)) or "")


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_carried_blocks_name_every_block_a_message_holds(message: m.PbftMessage) -> None:
    """The node signature-checks exactly these blocks' txs: any block a message holds and
    this misses would reach the engine with unverified txs."""
    expected: list[object] = []
    if isinstance(message, m.PrePrepare):
        expected = [message.block]
    elif isinstance(message, m.ViewChange):
        expected = [cert.pre_prepare.block for cert in message.prepared]
        assert expected, "the samples hold a VIEW-CHANGE with a prepared certificate"
    elif isinstance(message, m.NewView):
        expected = [pre_prepare.block for pre_prepare in message.pre_prepares]
        expected += [c.pre_prepare.block for vc in message.view_changes for c in vc.prepared]
    assert list(_ROUTER.codec.carried_blocks(message)) == expected


def test_vote_records_have_the_documented_layout() -> None:
    """docs/PBFT.md: key `pbft/vote/` u8 kind u64 seq, value u64 view | 32B digest."""
    digest = bytes(range(32))
    key, value = durable.vote_record(durable.VOTE_COMMIT, seq=7, view=2**40 + 3, digest=digest)
    assert key == b"pbft/vote/" + Writer().u8(durable.VOTE_COMMIT).u64(7).finish()
    assert value == Writer().u64(2**40 + 3).fixed(digest, 32).finish()
