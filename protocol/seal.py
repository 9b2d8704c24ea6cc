"""Seals: the proof that a block was committed, checkable by anyone holding the genesis
validator set.

A quorum seal (kind 1: PBFT, and the single-validator chain, whose quorum is 1) holds the
COMMIT-vote signatures of at least a BFT quorum of distinct validators over
    DOMAIN_COMMIT_VOTE || bytes8 chain_id || u64 view || u64 height || 32B block_hash
A leader seal (kind 2: Raft) holds one signature by the leader over
    DOMAIN_RAFT_SEAL || bytes8 chain_id || u64 term || u64 height || 32B block_hash
Raft tolerates crashes, not lies: a leader seal proves who vouched for the block, not that a
quorum agreed. docs/PROTOCOL.md §Seal.

Layout: u8 kind | u64 round (view or term) | u64 height | 32B block_hash | u16 count
        | count × (u16 validator_index | 64B signature), indices strictly increasing.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from protocol import limits
from protocol.crypto import (
    DOMAIN_COMMIT_VOTE,
    DOMAIN_RAFT_SEAL,
    HASH_BYTES,
    SIGNATURE_BYTES,
    SigningKey,
    verify,
)
from protocol.encoding import DecodeError, Reader, Writer
from protocol.tx import chain_id_invalid
from protocol.validators import ValidatorSet

SEAL_QUORUM = 1
SEAL_LEADER = 2
_KINDS = (SEAL_QUORUM, SEAL_LEADER)
# kind, round, height, block hash, count, then (u16 index, signature) per validator.
SEAL_BYTES_MAX = 1 + 8 + 8 + HASH_BYTES + 2 + limits.validators_max * (2 + SIGNATURE_BYTES)


_ROUND_HEIGHT = struct.Struct(">QQ")  # u64 view or term | u64 height


@functools.lru_cache(maxsize=16)
def _chain_prefix(chain_id: str) -> bytes:
    """bytes8 chain_id: a node signs and checks votes for one chain, so it is built once."""
    return Writer().bytes8(chain_id.encode("ascii")).finish()


def commit_vote_payload(*, chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    """bytes8 chain_id | u64 view | u64 height | 32B block_hash. Every consensus vote is
    signed over this layout (PBFT PRE-PREPARE and PREPARE too, under their own domains),
    several times per block, so it is one concatenation rather than a Writer."""
    assert len(block_hash) == HASH_BYTES, f"block hash is {len(block_hash)} bytes"
    return _chain_prefix(chain_id) + _ROUND_HEIGHT.pack(view, height) + block_hash


def sign_commit_vote(
    key: SigningKey, *, chain_id: str, view: int, height: int, block_hash: bytes
) -> bytes:
    payload = commit_vote_payload(
        chain_id=chain_id, view=view, height=height, block_hash=block_hash
    )
    return key.sign(DOMAIN_COMMIT_VOTE, payload)


def sign_leader_seal(
    key: SigningKey, *, chain_id: str, term: int, height: int, block_hash: bytes
) -> bytes:
    payload = commit_vote_payload(
        chain_id=chain_id, view=term, height=height, block_hash=block_hash
    )
    return key.sign(DOMAIN_RAFT_SEAL, payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seal:
    kind: int
    round: int  # PBFT view, or Raft term
    height: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]  # (validator index, signature), sorted

    def encode(self) -> bytes:
        writer = (
            Writer()
            .u8(self.kind)
            .u64(self.round)
            .u64(self.height)
            .fixed(self.block_hash, HASH_BYTES)
            .u16(len(self.signatures))
        )
        for index, signature in self.signatures:
            writer.u16(index).fixed(signature, SIGNATURE_BYTES)
        return writer.finish()

    def invalid_for(
        self, validators: ValidatorSet, *, chain_id: str, height: int, block_hash: bytes
    ) -> str | None:
        """None if this seal proves `block_hash` committed at `height`; else the reason.
        Checks every signature (never stops at the first quorum of claims)."""
        if (reason := chain_id_invalid(chain_id)) is not None:
            return reason
        if self.height != height:
            return f"seal is for height {self.height}, not {height}"
        if self.block_hash != block_hash:
            return "seal is for another block hash"
        indices = [index for index, _ in self.signatures]
        if indices != sorted(set(indices)):
            return "validator indices must be strictly increasing"
        if any(index >= validators.size for index in indices):
            return "validator index out of range"
        if self.kind == SEAL_QUORUM:
            domain = DOMAIN_COMMIT_VOTE
            if len(indices) < validators.quorum:
                return f"{len(indices)} signatures, quorum is {validators.quorum}"
        elif self.kind == SEAL_LEADER:
            domain = DOMAIN_RAFT_SEAL
            if len(indices) != 1:
                return "a leader seal has exactly one signature"
        else:
            return f"unknown seal kind {self.kind}"
        payload = commit_vote_payload(
            chain_id=chain_id, view=self.round, height=height, block_hash=block_hash
        )
        for index, signature in self.signatures:
            if not verify(validators.public_keys[index], domain, payload, signature):
                return f"bad signature from validator {index}"
        return None


def decode_seal(data: bytes) -> Seal:
    """Strict decode; signatures are checked only by Seal.invalid_for."""
    if len(data) > SEAL_BYTES_MAX:
        raise DecodeError(f"seal is {len(data)} bytes, max {SEAL_BYTES_MAX}")
    reader = Reader(data)
    kind = reader.u8("kind")
    if kind not in _KINDS:
        raise DecodeError(f"unknown seal kind {kind}")
    round_ = reader.u64("round")
    height = reader.u64("height")
    block_hash = reader.fixed(HASH_BYTES, "block_hash")
    count = reader.u16("count")
    if count > limits.validators_max:
        raise DecodeError(f"seal has {count} signatures, max {limits.validators_max}")
    signatures = tuple(
        (reader.u16(f"index[{i}]"), reader.fixed(SIGNATURE_BYTES, f"signature[{i}]"))
        for i in range(count)
    )
    reader.finish("seal")
    indices = [index for index, _ in signatures]
    if indices != sorted(set(indices)):
        raise DecodeError("seal validator indices must be strictly increasing")
    return Seal(
        kind=kind, round=round_, height=height, block_hash=block_hash, signatures=signatures
    )
