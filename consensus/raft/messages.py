"""Raft wire messages (Ongaro & Ousterhout, extended paper Figure 2; thesis §3.10, §4.2.3,
§9.6), adapted to a chain of blocks.

A log entry is either a block, or a no-op that a new leader appends at the start of its term
(thesis §6.4 / paper §8) so that entries of earlier terms can commit (§5.4.2). Block entries
carry the leader's seal signature over (chain_id, term, height, block_hash) under
DOMAIN_RAFT_SEAL (protocol/seal.py), made when the leader proposed the block; every node
that commits the entry emits the same `SealedBlock`.

Every message names its sender and is signed by it (Raft needs no signatures for safety;
we authenticate senders anyway). The signature covers

    DOMAIN_CONSENSUS || b"raft/v1" || u8 tag || bytes8 chain_id || body

where `body` is the message's fields in wire order with each entry's block replaced by its
32-byte hash (the header commits to the txs, and the codec checks the body against the
header), so signing a batch of blocks costs one hash per block, not one pass over the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from protocol.block import Block
from protocol.crypto import (
    DOMAIN_CONSENSUS,
    DOMAIN_RAFT_SEAL,
    HASH_BYTES,
    ZERO_HASH,
    SigningKey,
    verify,
)
from protocol.encoding import Writer
from protocol.seal import commit_vote_payload
from protocol.validators import ValidatorSet

TAG_REQUEST_VOTE = 1
TAG_REQUEST_VOTE_REPLY = 2
TAG_APPEND_ENTRIES = 3
TAG_APPEND_ENTRIES_REPLY = 4
TAG_INSTALL_SNAPSHOT = 5
TAG_TIMEOUT_NOW = 6

ENTRY_NOOP = 0
ENTRY_BLOCK = 1

SIGNATURE_DOMAIN = DOMAIN_CONSENSUS + b"raft/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One log entry. `signer` is the leader of `term` (it proposed and sealed the block)."""

    term: int
    signer: int
    block: Block | None  # None: the no-op a leader appends when its term starts
    seal_signature: bytes = b""  # empty for a no-op

    @property
    def kind(self) -> int:
        return ENTRY_NOOP if self.block is None else ENTRY_BLOCK


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestVote:
    """Figure 2 RequestVote RPC. With `pre_vote` (thesis §9.6) `term` is the term the sender
    *would* campaign in; nobody changes term or vote for it. `transfer` marks an election
    started by TimeoutNow (thesis §3.10), which voters honour even inside a leader lease."""

    term: int
    sender: int
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False
    signature: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestVoteReply:
    term: int
    sender: int
    granted: bool
    pre_vote: bool = False
    signature: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntries:
    """Figure 2 AppendEntries RPC; an empty `entries` is a heartbeat."""

    term: int
    sender: int  # the leader
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    leader_commit: int
    signature: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntriesReply:
    """`success`: the follower's log matches the leader's through `index` (its match
    index). Otherwise `index` is a hint: the leader should retry from `index` + 1."""

    term: int
    sender: int
    success: bool
    index: int
    signature: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshot:
    """Figure 13 InstallSnapshot, by reference: the snapshot is the committed chain up to
    `last_height` (whose block hash is `block_hash`) plus the service state, which the
    follower rebuilds by fetching sealed blocks from peers (the node's block sync)."""

    term: int
    sender: int
    last_index: int
    last_term: int
    last_height: int
    block_hash: bytes
    signature: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """Thesis §3.10 leadership transfer: start an election now, skipping pre-vote."""

    term: int
    sender: int
    signature: bytes = b""


RaftMessage = (
    RequestVote
    | RequestVoteReply
    | AppendEntries
    | AppendEntriesReply
    | InstallSnapshot
    | TimeoutNow
)
M = TypeVar("M", bound=RaftMessage)


def tag_of(message: RaftMessage) -> int:
    if isinstance(message, RequestVote):
        return TAG_REQUEST_VOTE
    if isinstance(message, RequestVoteReply):
        return TAG_REQUEST_VOTE_REPLY
    if isinstance(message, AppendEntries):
        return TAG_APPEND_ENTRIES
    if isinstance(message, AppendEntriesReply):
        return TAG_APPEND_ENTRIES_REPLY
    if isinstance(message, InstallSnapshot):
        return TAG_INSTALL_SNAPSHOT
    return TAG_TIMEOUT_NOW


def signed_payload(chain_id: str, message: RaftMessage) -> bytes:
    writer = Writer().u8(tag_of(message)).bytes8(chain_id.encode("ascii"))
    writer.u64(message.term).u16(message.sender)
    if isinstance(message, RequestVote):
        writer.u64(message.last_index).u64(message.last_term)
        writer.u8(int(message.pre_vote)).u8(int(message.transfer))
    elif isinstance(message, RequestVoteReply):
        writer.u8(int(message.granted)).u8(int(message.pre_vote))
    elif isinstance(message, AppendEntries):
        writer.u64(message.prev_index).u64(message.prev_term).u64(message.leader_commit)
        writer.u32(len(message.entries))
        for entry in message.entries:
            block_hash = ZERO_HASH if entry.block is None else entry.block.hash()
            writer.u64(entry.term).u16(entry.signer).u8(entry.kind)
            writer.fixed(block_hash, HASH_BYTES).bytes8(entry.seal_signature)
    elif isinstance(message, AppendEntriesReply):
        writer.u8(int(message.success)).u64(message.index)
    elif isinstance(message, InstallSnapshot):
        writer.u64(message.last_index).u64(message.last_term).u64(message.last_height)
        writer.fixed(message.block_hash, HASH_BYTES)
    return writer.finish()


def sign_message(key: SigningKey, chain_id: str, message: M) -> M:
    signature = key.sign(SIGNATURE_DOMAIN, signed_payload(chain_id, message))
    return replace(message, signature=signature)


def signature_valid(chain_id: str, validators: ValidatorSet, message: RaftMessage) -> bool:
    if not 0 <= message.sender < validators.size:
        return False
    return verify(
        validators.public_keys[message.sender],
        SIGNATURE_DOMAIN,
        signed_payload(chain_id, message),
        message.signature,
    )


def seal_payload(*, chain_id: str, term: int, height: int, block_hash: bytes) -> bytes:
    """What a leader seal signs (after DOMAIN_RAFT_SEAL): protocol/seal.py's layout."""
    return commit_vote_payload(chain_id=chain_id, view=term, height=height, block_hash=block_hash)


def seal_signature_valid(chain_id: str, validators: ValidatorSet, entry: Entry) -> bool:
    """The entry's seal signature, by its signer, over its own term, height and hash."""
    if entry.block is None or not 0 <= entry.signer < validators.size:
        return False
    payload = seal_payload(
        chain_id=chain_id,
        term=entry.term,
        height=entry.block.height,
        block_hash=entry.block.hash(),
    )
    return verify(
        validators.public_keys[entry.signer], DOMAIN_RAFT_SEAL, payload, entry.seal_signature
    )
