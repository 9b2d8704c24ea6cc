"""RaftCodec: canonical round trips, strict decoding, and the stateless checks at the edge
(sender, signature, carried blocks and their leader seals)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.raft import messages as m
from consensus.raft.codec import RaftCodec, decode_entry, encode_entry
from consensus.sim.client import SimClient
from consensus.types import NodeId
from protocol.encoding import DecodeError
from tests.consensus.raft.raft_harness import Router


def _samples() -> list[m.RaftMessage]:
    """One real message of every type, from a short run (blocks with txs included)."""
    router = Router(3, log_retention_heights=2, compaction_step_heights=1)
    seen: dict[type, m.RaftMessage] = {}

    def keep(sender: int, target: int, message: object) -> bool:
        assert isinstance(message, m.RaftMessage)
        if not isinstance(message, m.AppendEntries) or any(e.block for e in message.entries):
            seen.setdefault(type(message), message)
        return True

    client = SimClient(random.Random(1), chain_id=router.params.chain_id, seed=1)
    router.isolated.add(2)
    while router.engines[0].role != "leader":
        router.tick(0)
        router.deliver(only=keep)
    for _ in range(6):
        router.propose(0, txs=tuple(client.new_tx()[1] for _ in range(2)))
        router.deliver(only=keep)
    router.isolated.clear()
    for _ in range(3):
        router.tick(0, 2)
        router.deliver(only=keep)
    router.absorb(0, router.engines[0].transfer_leadership())
    router.deliver(only=keep)
    assert set(seen) == {
        m.RequestVote,
        m.RequestVoteReply,
        m.AppendEntries,
        m.AppendEntriesReply,
        m.InstallSnapshot,
        m.TimeoutNow,
    }, set(seen)
    return list(seen.values())


SAMPLES = _samples()
CODEC = Router(3).codec


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_every_message_type_round_trips_and_verifies(message: m.RaftMessage) -> None:
    data = CODEC.encode(message)
    decoded = CODEC.decode(data)
    assert decoded == message
    assert CODEC.encode(decoded) == data
    assert CODEC.invalid(decoded, NodeId(message.sender)) is None


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_every_truncation_and_trailing_byte_is_rejected(message: m.RaftMessage) -> None:
    data = CODEC.encode(message)
    step = max(1, len(data) // 300)
    for end in range(0, len(data), step):
        with pytest.raises(DecodeError):
            CODEC.decode(data[:end])
    with pytest.raises(DecodeError):
        CODEC.decode(data + b"\x00")


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_sender_must_sign_its_own_message(message: m.RaftMessage) -> None:
    other = (message.sender + 1) % 3
    assert "sent by" in (CODEC.invalid(message, NodeId(other)) or "")
    tampered = replace(message, term=message.term + 1)
    assert "bad signature" in (CODEC.invalid(tampered, NodeId(message.sender)) or "")


def _append_with_block() -> m.AppendEntries:
    return next(
        s
        for s in SAMPLES
        if isinstance(s, m.AppendEntries) and any(e.block is not None for e in s.entries)
    )


def test_append_with_a_forged_leader_seal_is_rejected() -> None:
    message = _append_with_block()
    entries = tuple(
        replace(e, seal_signature=bytes(64)) if e.block is not None else e for e in message.entries
    )
    router = Router(3)
    forged = m.sign_message(router.params.keys[message.sender], router.params.chain_id,
                            replace(message, entries=entries))  # fmt: skip
    assert "bad leader seal" in (CODEC.invalid(forged, NodeId(message.sender)) or "")


def test_current_term_entries_must_be_signed_by_the_sender() -> None:
    message = _append_with_block()
    entries = tuple(replace(e, signer=(message.sender + 1) % 3) for e in message.entries)
    router = Router(3)
    forged = m.sign_message(router.params.keys[message.sender], router.params.chain_id,
                            replace(message, entries=entries, term=entries[-1].term))  # fmt: skip
    assert CODEC.invalid(forged, NodeId(message.sender)) is not None


def test_unknown_tag_kind_and_flag_are_rejected() -> None:
    vote = next(s for s in SAMPLES if isinstance(s, m.RequestVote))
    data = bytearray(CODEC.encode(vote))
    data[0] = 99
    with pytest.raises(DecodeError, match="unknown Raft message tag"):
        CODEC.decode(bytes(data))
    data = bytearray(CODEC.encode(vote))
    data[1 + 8 + 2 + 16] = 2  # the pre_vote flag
    with pytest.raises(DecodeError, match="must be 0 or 1"):
        CODEC.decode(bytes(data))


def test_append_above_the_entry_bound_is_rejected() -> None:
    message = _append_with_block()
    router = Router(3, max_entries_per_append=1)
    noops = tuple(m.Entry(term=message.term, signer=message.sender, block=None) for _ in range(2))
    data = router.codec.encode(replace(message, entries=noops))
    with pytest.raises(DecodeError, match="max 1"):
        router.codec.decode(data)


def test_carried_blocks_are_the_append_entries_blocks() -> None:
    message = _append_with_block()
    blocks = CODEC.carried_blocks(message)
    assert blocks
    assert blocks == tuple(e.block for e in message.entries if e.block is not None)
    vote = next(s for s in SAMPLES if isinstance(s, m.RequestVote))
    assert CODEC.carried_blocks(vote) == ()


def test_entry_record_round_trips() -> None:
    for entry in _append_with_block().entries:
        assert decode_entry(encode_entry(entry)) == entry


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    codec: RaftCodec = CODEC
    try:
        message = codec.decode(data)
    except DecodeError:
        return
    assert isinstance(message, m.RaftMessage)
    assert codec.invalid(message, NodeId(message.sender)) is not None, "no valid signature"


def test_snapshot_claiming_more_blocks_than_entries_is_rejected() -> None:
    snapshot = next(s for s in SAMPLES if isinstance(s, m.InstallSnapshot))
    router = Router(3)
    bad = m.sign_message(router.params.keys[snapshot.sender], router.params.chain_id,
                         replace(snapshot, last_height=snapshot.last_index + 1))  # fmt: skip
    assert "snapshot height" in (CODEC.invalid(bad, NodeId(snapshot.sender)) or "")
