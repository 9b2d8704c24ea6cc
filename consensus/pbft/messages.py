"""PBFT wire messages (Castro & Liskov, OSDI '99 §4; TOCS 2002), adapted to blocks.

The sequence number is the block height and the block is the batch. Every message names the
validator that signed it (`replica`, its index in the genesis validator set), because
certificates nested in VIEW-CHANGE and NEW-VIEW carry messages signed by *other* validators.

What each signature covers (`chain_id` is never on the wire; both sides know it):

    PRE-PREPARE   DOMAIN_CONSENSUS || 0x01 || bytes8 chain_id || u64 view || u64 seq || 32B digest
    PREPARE       DOMAIN_CONSENSUS || 0x02 || bytes8 chain_id || u64 view || u64 seq || 32B digest
    COMMIT        DOMAIN_COMMIT_VOTE || protocol.seal.commit_vote_payload(chain_id, view, seq,
                  digest): exactly the seal's vote, so a quorum of COMMITs *is* the seal.
    CHECKPOINT    DOMAIN_CONSENSUS || 0x04 || bytes8 chain_id || u64 seq || 32B block_hash
                  || 32B app_hash
    VIEW-CHANGE   DOMAIN_CONSENSUS || 0x05 || bytes8 chain_id || u64 new_view || u64 checkpoint_seq
                  || 32B checkpoint_block_hash || 32B checkpoint_app_hash || u16 count
                  || count x (u64 seq || u64 view || 32B digest)        (one per certificate)
    NEW-VIEW      DOMAIN_CONSENSUS || 0x06 || bytes8 chain_id || u64 view || u16 vc_count
                  || vc_count x (u16 replica || 32B sha256(view-change signature))
                  || u16 pp_count || pp_count x (u64 seq || 32B digest)

The digest of a block is its hash (SHA-256 of the header). Pre-prepares sign the digest, not
the block bytes: the block travels next to the signature and is checked against it.

This module is the stable vocabulary shared with the simulator's byzantine wrappers: the
`make_*` constructors sign, `signature_valid` checks one message's own signature (nested
certificates are checked by codec.PbftCodec.invalid).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from protocol.block import Block
from protocol.crypto import (
    DOMAIN_COMMIT_VOTE,
    DOMAIN_CONSENSUS,
    HASH_BYTES,
    ZERO_HASH,
    SigningKey,
    sha256,
    verify,
)
from protocol.encoding import Writer
from protocol.seal import commit_vote_payload
from protocol.validators import ValidatorSet

TAG_PRE_PREPARE = 1
TAG_PREPARE = 2
TAG_COMMIT = 3
TAG_CHECKPOINT = 4
TAG_VIEW_CHANGE = 5
TAG_NEW_VIEW = 6

GENESIS_CHECKPOINT_HASH = ZERO_HASH  # the "block hash" of height 0: height 1's prev_hash


_DOMAINS = {
    tag: DOMAIN_CONSENSUS + bytes([tag])
    for tag in (TAG_PRE_PREPARE, TAG_PREPARE, TAG_CHECKPOINT, TAG_VIEW_CHANGE, TAG_NEW_VIEW)
}


def domain(tag: int) -> bytes:
    """Domain of a non-commit PBFT signature: the consensus domain plus the type tag."""
    return _DOMAINS[tag]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrePrepare:
    """§4.2: the primary of `view` assigns `seq` to `block`."""

    view: int
    seq: int
    block: Block
    replica: int
    signature: bytes

    @property
    def digest(self) -> bytes:
        return self.block.hash()


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare:
    """§4.2: a backup agrees to the primary's assignment of `digest` to (view, seq)."""

    view: int
    seq: int
    digest: bytes
    replica: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """§4.2: `replica` holds prepared(digest, view, seq); its signature is the commit vote."""

    view: int
    seq: int
    digest: bytes
    replica: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """§4.3: `replica` executed the chain up to `seq`, ending at `block_hash`, with state
    `app_hash`. A quorum of matching checkpoints makes `seq` stable."""

    seq: int
    block_hash: bytes
    app_hash: bytes
    replica: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedCertificate:
    """§4.4 set P: a pre-prepare (with its block) plus quorum - 1 matching PREPAREs from
    distinct replicas other than the primary: proof that (view, seq, digest) prepared."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]

    @property
    def view(self) -> int:
        return self.pre_prepare.view

    @property
    def seq(self) -> int:
        return self.pre_prepare.seq

    @property
    def digest(self) -> bytes:
        return self.pre_prepare.digest


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewChange:
    """§4.4: `replica` moves to `new_view`. `checkpoint_proof` is a quorum of CHECKPOINTs for
    `checkpoint_seq` (empty for seq 0, the genesis); `prepared` holds one certificate, the
    highest-view one, per seq above `checkpoint_seq`, in increasing seq order."""

    new_view: int
    checkpoint_seq: int
    checkpoint_block_hash: bytes
    checkpoint_app_hash: bytes
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCertificate, ...]
    replica: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class NewView:
    """§4.4: the primary of `view` proves it may start the view (`view_changes`, a quorum
    of VIEW-CHANGEs for `view`) and re-proposes `pre_prepares` (set O, signed for `view`)."""

    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    replica: int
    signature: bytes


PbftMessage = PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView


# --- signed payloads -------------------------------------------------------------------


def _vote_payload(chain_id: str, view: int, seq: int, digest: bytes) -> bytes:
    """PRE-PREPARE and PREPARE sign the commit vote's layout (under their own domains)."""
    return commit_vote_payload(chain_id=chain_id, view=view, height=seq, block_hash=digest)


def checkpoint_payload(chain_id: str, seq: int, block_hash: bytes, app_hash: bytes) -> bytes:
    return (
        Writer()
        .bytes8(chain_id.encode("ascii"))
        .u64(seq)
        .fixed(block_hash, HASH_BYTES)
        .fixed(app_hash, HASH_BYTES)
        .finish()
    )


def view_change_payload(chain_id: str, message: ViewChange) -> bytes:
    writer = (
        Writer()
        .bytes8(chain_id.encode("ascii"))
        .u64(message.new_view)
        .u64(message.checkpoint_seq)
        .fixed(message.checkpoint_block_hash, HASH_BYTES)
        .fixed(message.checkpoint_app_hash, HASH_BYTES)
        .u16(len(message.prepared))
    )
    for certificate in message.prepared:
        writer.u64(certificate.seq).u64(certificate.view).fixed(certificate.digest, HASH_BYTES)
    return writer.finish()


def new_view_payload(chain_id: str, message: NewView) -> bytes:
    writer = Writer().bytes8(chain_id.encode("ascii")).u64(message.view)
    writer.u16(len(message.view_changes))
    for view_change in message.view_changes:
        writer.u16(view_change.replica).fixed(sha256(view_change.signature), HASH_BYTES)
    writer.u16(len(message.pre_prepares))
    for pre_prepare in message.pre_prepares:
        writer.u64(pre_prepare.seq).fixed(pre_prepare.digest, HASH_BYTES)
    return writer.finish()


def signed_bytes(chain_id: str, message: PbftMessage) -> tuple[bytes, bytes]:
    """(domain, payload) that `message.signature` covers."""
    if isinstance(message, PrePrepare):
        payload = _vote_payload(chain_id, message.view, message.seq, message.digest)
        return domain(TAG_PRE_PREPARE), payload
    if isinstance(message, Prepare):
        payload = _vote_payload(chain_id, message.view, message.seq, message.digest)
        return domain(TAG_PREPARE), payload
    if isinstance(message, Commit):
        payload = commit_vote_payload(
            chain_id=chain_id, view=message.view, height=message.seq, block_hash=message.digest
        )
        return DOMAIN_COMMIT_VOTE, payload
    if isinstance(message, Checkpoint):
        payload = checkpoint_payload(chain_id, message.seq, message.block_hash, message.app_hash)
        return domain(TAG_CHECKPOINT), payload
    if isinstance(message, ViewChange):
        return domain(TAG_VIEW_CHANGE), view_change_payload(chain_id, message)
    return domain(TAG_NEW_VIEW), new_view_payload(chain_id, message)


def signature_valid(chain_id: str, validators: ValidatorSet, message: PbftMessage) -> bool:
    """True iff `message.signature` is `message.replica`'s signature over its signed bytes.
    Nested messages are not checked here."""
    if not 0 <= message.replica < validators.size:
        return False
    signing_domain, payload = signed_bytes(chain_id, message)
    return verify(
        validators.public_keys[message.replica], signing_domain, payload, message.signature
    )


_UNSIGNED = bytes(64)  # placeholder while the signed bytes are computed
M = TypeVar("M", PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView)


# --- constructors that sign -------------------------------------------------------------


def sign_message(key: SigningKey, chain_id: str, message: M) -> M:
    """`message` with its signature replaced by `key`'s signature over its signed bytes."""
    signing_domain, payload = signed_bytes(chain_id, message)
    return replace(message, signature=key.sign(signing_domain, payload))


def _sign_new(key: SigningKey, chain_id: str, unsigned: M) -> M:
    """`sign_message` for a message the `make_*` below just built and nobody else holds:
    its placeholder signature is set in place, as copying the message through
    dataclasses.replace cost more than the rest of making a vote but the signing."""
    signing_domain, payload = signed_bytes(chain_id, unsigned)
    object.__setattr__(unsigned, "signature", key.sign(signing_domain, payload))
    return unsigned


def make_pre_prepare(
    key: SigningKey, *, chain_id: str, view: int, seq: int, block: Block, replica: int
) -> PrePrepare:
    unsigned = PrePrepare(view=view, seq=seq, block=block, replica=replica, signature=_UNSIGNED)
    return _sign_new(key, chain_id, unsigned)


def make_prepare(
    key: SigningKey, *, chain_id: str, view: int, seq: int, digest: bytes, replica: int
) -> Prepare:
    unsigned = Prepare(view=view, seq=seq, digest=digest, replica=replica, signature=_UNSIGNED)
    return _sign_new(key, chain_id, unsigned)


def make_commit(
    key: SigningKey, *, chain_id: str, view: int, seq: int, digest: bytes, replica: int
) -> Commit:
    unsigned = Commit(view=view, seq=seq, digest=digest, replica=replica, signature=_UNSIGNED)
    return _sign_new(key, chain_id, unsigned)


def make_checkpoint(
    key: SigningKey, *, chain_id: str, seq: int, block_hash: bytes, app_hash: bytes, replica: int
) -> Checkpoint:
    unsigned = Checkpoint(
        seq=seq, block_hash=block_hash, app_hash=app_hash, replica=replica, signature=_UNSIGNED
    )
    return _sign_new(key, chain_id, unsigned)


def make_view_change(
    key: SigningKey,
    *,
    chain_id: str,
    new_view: int,
    checkpoint: tuple[int, bytes, bytes],
    checkpoint_proof: tuple[Checkpoint, ...],
    prepared: tuple[PreparedCertificate, ...],
    replica: int,
) -> ViewChange:
    """`checkpoint` is (seq, block_hash, app_hash) of the sender's stable checkpoint."""
    seq, block_hash, app_hash = checkpoint
    unsigned = ViewChange(
        new_view=new_view,
        checkpoint_seq=seq,
        checkpoint_block_hash=block_hash,
        checkpoint_app_hash=app_hash,
        checkpoint_proof=checkpoint_proof,
        prepared=prepared,
        replica=replica,
        signature=_UNSIGNED,
    )
    return _sign_new(key, chain_id, unsigned)


def make_new_view(
    key: SigningKey,
    *,
    chain_id: str,
    view: int,
    view_changes: tuple[ViewChange, ...],
    pre_prepares: tuple[PrePrepare, ...],
    replica: int,
) -> NewView:
    unsigned = NewView(
        view=view,
        view_changes=view_changes,
        pre_prepares=pre_prepares,
        replica=replica,
        signature=_UNSIGNED,
    )
    return _sign_new(key, chain_id, unsigned)
