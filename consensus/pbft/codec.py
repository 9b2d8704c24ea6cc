"""Canonical binary encoding of PBFT messages, and the stateless checks done at the edge.

Layout (fixed-width big-endian integers, protocol.encoding), one type tag first:

    PRE-PREPARE  u8 1 | u64 view | u64 seq | u16 replica | 64B sig | bytes32 block
    PREPARE      u8 2 | u64 view | u64 seq | 32B digest | u16 replica | 64B sig
    COMMIT       u8 3 | u64 view | u64 seq | 32B digest | u16 replica | 64B sig
    CHECKPOINT   u8 4 | u64 seq | 32B block_hash | 32B app_hash | u16 replica | 64B sig
    VIEW-CHANGE  u8 5 | u64 new_view | u64 checkpoint_seq | 32B block_hash | 32B app_hash
                 | u16 count | count x CHECKPOINT-without-tag
                 | u16 count | count x (PRE-PREPARE-without-tag | u16 k | k x PREPARE-without-tag)
                 | u16 replica | 64B sig
    NEW-VIEW     u8 6 | u64 view | u16 count | count x VIEW-CHANGE-without-tag
                 | u16 count | count x PRE-PREPARE-without-tag | u16 replica | 64B sig

Decoding is strict (DecodeError on truncation, trailing bytes, unknown tags, counts above
their bounds). `invalid` does every check that needs no engine state, including every
signature of every nested certificate, so the engine never sees a forged message. What the
signatures cover is documented in messages.py.
"""

from __future__ import annotations

import struct

from consensus.pbft import messages as m
from consensus.pbft.config import PbftConfig
from consensus.types import NodeId
from protocol import limits
from protocol.block import Block, decode_block
from protocol.crypto import HASH_BYTES, SIGNATURE_BYTES, ZERO_HASH
from protocol.encoding import DecodeError, Reader, Writer

MESSAGE_BYTES_MAX = 4 * limits.block_bytes_max  # a VIEW-CHANGE carries prepared blocks


class PbftCodec:
    """consensus.types.MessageCodec for PBFT, bound to one chain and validator set."""

    def __init__(self, config: PbftConfig, *, message_bytes_max: int = MESSAGE_BYTES_MAX) -> None:
        self._config = config
        self._chain_id = config.chain_id
        self._validators = config.validators
        self._message_bytes_max = message_bytes_max
        self._certificates_max = config.watermark_window_seqs

    # --- encode ---------------------------------------------------------------------------

    def encode(self, message: object) -> bytes:
        if isinstance(message, m.Prepare | m.Commit):
            return _encode_vote(message)
        writer = Writer()
        if isinstance(message, m.PrePrepare):
            _write_pre_prepare(writer.u8(m.TAG_PRE_PREPARE), message)
        elif isinstance(message, m.Checkpoint):
            _write_checkpoint(writer.u8(m.TAG_CHECKPOINT), message)
        elif isinstance(message, m.ViewChange):
            _write_view_change(writer.u8(m.TAG_VIEW_CHANGE), message)
        elif isinstance(message, m.NewView):
            _write_new_view(writer.u8(m.TAG_NEW_VIEW), message)
        else:
            raise TypeError(f"not a PBFT message: {type(message).__name__}")
        return writer.finish()

    # --- decode ---------------------------------------------------------------------------

    def decode(self, data: bytes) -> object:
        if len(data) > self._message_bytes_max:
            raise DecodeError(f"message is {len(data)} bytes, max {self._message_bytes_max}")
        if len(data) == _VOTE.size and type(data) is bytes:
            vote = _decode_vote(data)
            if vote is not None:
                return vote
        reader = Reader(data)
        tag = reader.u8("tag")
        message: m.PbftMessage
        if tag == m.TAG_PRE_PREPARE:
            message = _read_pre_prepare(reader)
        elif tag == m.TAG_PREPARE:
            message = _read_prepare(reader)
        elif tag == m.TAG_COMMIT:
            message = _read_commit(reader)
        elif tag == m.TAG_CHECKPOINT:
            message = _read_checkpoint(reader)
        elif tag == m.TAG_VIEW_CHANGE:
            message = self._read_view_change(reader)
        elif tag == m.TAG_NEW_VIEW:
            message = self._read_new_view(reader)
        else:
            raise DecodeError(f"unknown PBFT message tag {tag}")
        reader.finish("PBFT message")
        return message

    def _read_view_change(self, reader: Reader) -> m.ViewChange:
        new_view = reader.u64("new_view")
        checkpoint_seq = reader.u64("checkpoint_seq")
        block_hash = reader.fixed(HASH_BYTES, "checkpoint_block_hash")
        app_hash = reader.fixed(HASH_BYTES, "checkpoint_app_hash")
        proof_count = _count(reader, "checkpoint_proof", self._validators.size)
        proof = tuple(_read_checkpoint(reader) for _ in range(proof_count))
        certificate_count = _count(reader, "prepared", self._certificates_max)
        prepared = tuple(self._read_certificate(reader) for _ in range(certificate_count))
        replica = reader.u16("replica")
        signature = reader.fixed(SIGNATURE_BYTES, "signature")
        return m.ViewChange(
            new_view=new_view,
            checkpoint_seq=checkpoint_seq,
            checkpoint_block_hash=block_hash,
            checkpoint_app_hash=app_hash,
            checkpoint_proof=proof,
            prepared=prepared,
            replica=replica,
            signature=signature,
        )

    def _read_certificate(self, reader: Reader) -> m.PreparedCertificate:
        pre_prepare = _read_pre_prepare(reader)
        prepare_count = _count(reader, "prepares", self._validators.size)
        prepares = tuple(_read_prepare(reader) for _ in range(prepare_count))
        return m.PreparedCertificate(pre_prepare=pre_prepare, prepares=prepares)

    def _read_new_view(self, reader: Reader) -> m.NewView:
        view = reader.u64("view")
        view_change_count = _count(reader, "view_changes", self._validators.size)
        view_changes = tuple(self._read_view_change(reader) for _ in range(view_change_count))
        pre_prepare_count = _count(reader, "pre_prepares", self._certificates_max)
        pre_prepares = tuple(_read_pre_prepare(reader) for _ in range(pre_prepare_count))
        replica = reader.u16("replica")
        signature = reader.fixed(SIGNATURE_BYTES, "signature")
        return m.NewView(
            view=view,
            view_changes=view_changes,
            pre_prepares=pre_prepares,
            replica=replica,
            signature=signature,
        )

    # --- stateless validity -----------------------------------------------------------------

    def carried_blocks(self, message: object) -> tuple[Block, ...]:
        """The blocks a message carries, whose txs the node signature-checks before the
        engine sees the message: a PRE-PREPARE's, those of a VIEW-CHANGE's prepared
        certificates, and those of a NEW-VIEW's re-proposals and VIEW-CHANGEs. A block left
        out here would let a faulty primary order txs no backup ever verified."""
        if isinstance(message, m.PrePrepare):
            return (message.block,)
        if isinstance(message, m.ViewChange):
            return tuple(cert.pre_prepare.block for cert in message.prepared)
        if isinstance(message, m.NewView):
            blocks = [pre_prepare.block for pre_prepare in message.pre_prepares]
            for view_change in message.view_changes:
                blocks.extend(cert.pre_prepare.block for cert in view_change.prepared)
            return tuple(blocks)
        return ()

    def invalid(self, message: object, sender: NodeId) -> str | None:
        """None if `message` from `sender` passes every check that needs no engine state."""
        if not isinstance(
            message, m.PrePrepare | m.Prepare | m.Commit | m.Checkpoint | m.ViewChange | m.NewView
        ):
            return f"not a PBFT message: {type(message).__name__}"
        if message.replica != sender:
            return f"signed by replica {message.replica}, sent by {sender}"
        return self.message_invalid(message)

    def message_invalid(self, message: m.PbftMessage) -> str | None:
        """Checks of one message on its own (also used for nested messages)."""
        if isinstance(message, m.PrePrepare):
            return self._pre_prepare_invalid(message)
        if isinstance(message, m.Prepare):
            return self._prepare_invalid(message)
        if isinstance(message, m.Commit):
            return self._signature_invalid(message)
        if isinstance(message, m.Checkpoint):
            return self._checkpoint_invalid(message)
        if isinstance(message, m.ViewChange):
            return self._view_change_invalid(message)
        return self._new_view_invalid(message)

    def _signature_invalid(self, message: m.PbftMessage) -> str | None:
        if not 0 <= message.replica < self._validators.size:
            return f"replica {message.replica} is not a validator"
        if not m.signature_valid(self._chain_id, self._validators, message):
            return f"bad signature from replica {message.replica}"
        return None

    def _pre_prepare_invalid(self, message: m.PrePrepare) -> str | None:
        if message.replica != self._config.primary_of(message.view):
            return f"pre-prepare from {message.replica}, not the primary of view {message.view}"
        if message.block.height != message.seq:
            return f"block height {message.block.height} is not seq {message.seq}"
        if message.block.header.chain_id != self._chain_id:
            return "block is for another chain"
        return self._signature_invalid(message)

    def _prepare_invalid(self, message: m.Prepare) -> str | None:
        if message.replica == self._config.primary_of(message.view):
            return "the primary does not send PREPARE"
        return self._signature_invalid(message)

    def _checkpoint_invalid(self, message: m.Checkpoint) -> str | None:
        if message.seq == 0 or message.seq % self._config.checkpoint_interval_seqs:
            return f"checkpoint seq {message.seq} is not a multiple of K"
        return self._signature_invalid(message)

    def _view_change_invalid(self, message: m.ViewChange) -> str | None:
        if message.new_view == 0:
            return "view change to view 0"
        if (reason := self.checkpoint_proof_invalid(message)) is not None:
            return reason
        previous_seq = message.checkpoint_seq
        for certificate in message.prepared:
            if certificate.seq <= previous_seq:
                return "prepared certificates must be above the checkpoint, in seq order"
            if certificate.seq > message.checkpoint_seq + self._config.watermark_window_seqs:
                return f"certificate seq {certificate.seq} above the high watermark"
            if certificate.view >= message.new_view:
                return f"certificate from view {certificate.view} >= {message.new_view}"
            if (reason := self.certificate_invalid(certificate)) is not None:
                return reason
            previous_seq = certificate.seq
        return self._signature_invalid(message)

    def checkpoint_proof_invalid(self, message: m.ViewChange) -> str | None:
        """The proof of the VIEW-CHANGE's stable checkpoint (§4.3); seq 0 is genesis."""
        if message.checkpoint_seq == 0:
            if message.checkpoint_proof or message.checkpoint_block_hash != ZERO_HASH:
                return "the genesis checkpoint has no proof and a zero hash"
            return None
        return self.stable_proof_invalid(
            message.checkpoint_proof,
            seq=message.checkpoint_seq,
            block_hash=message.checkpoint_block_hash,
            app_hash=message.checkpoint_app_hash,
        )

    def stable_proof_invalid(
        self, proof: tuple[m.Checkpoint, ...], *, seq: int, block_hash: bytes, app_hash: bytes
    ) -> str | None:
        replicas = [checkpoint.replica for checkpoint in proof]
        if replicas != sorted(set(replicas)):
            return "checkpoint proof replicas must be strictly increasing"
        if len(proof) < self._config.quorum:
            return f"checkpoint proof has {len(proof)} messages, quorum is {self._config.quorum}"
        for checkpoint in proof:
            if (checkpoint.seq, checkpoint.block_hash, checkpoint.app_hash) != (
                seq,
                block_hash,
                app_hash,
            ):
                return "checkpoint proof messages disagree"
            if (reason := self._checkpoint_invalid(checkpoint)) is not None:
                return reason
        return None

    def certificate_invalid(self, certificate: m.PreparedCertificate) -> str | None:
        """prepared(m, v, n) (§4.2): the pre-prepare and quorum - 1 matching PREPAREs."""
        if (reason := self._pre_prepare_invalid(certificate.pre_prepare)) is not None:
            return reason
        replicas = [prepare.replica for prepare in certificate.prepares]
        if replicas != sorted(set(replicas)):
            return "certificate prepare replicas must be strictly increasing"
        if len(replicas) < self._config.quorum - 1:
            return f"certificate has {len(replicas)} prepares, needs {self._config.quorum - 1}"
        for prepare in certificate.prepares:
            if (prepare.view, prepare.seq, prepare.digest) != (
                certificate.view,
                certificate.seq,
                certificate.digest,
            ):
                return "certificate prepares disagree with its pre-prepare"
            if (reason := self._prepare_invalid(prepare)) is not None:
                return reason
        return None

    def _new_view_invalid(self, message: m.NewView) -> str | None:
        if message.replica != self._config.primary_of(message.view):
            return f"new-view from {message.replica}, not the primary of view {message.view}"
        replicas = [view_change.replica for view_change in message.view_changes]
        if replicas != sorted(set(replicas)):
            return "new-view view-change senders must be strictly increasing"
        if len(replicas) < self._config.quorum:
            return f"new-view has {len(replicas)} view-changes, quorum is {self._config.quorum}"
        for view_change in message.view_changes:
            if view_change.new_view != message.view:
                return "new-view carries a view-change for another view"
            if (reason := self._view_change_invalid(view_change)) is not None:
                return reason
        previous_seq = 0
        for pre_prepare in message.pre_prepares:
            if pre_prepare.view != message.view or pre_prepare.seq <= previous_seq:
                return "new-view pre-prepares must be for its view, in seq order"
            if (reason := self._pre_prepare_invalid(pre_prepare)) is not None:
                return reason
            previous_seq = pre_prepare.seq
        return self._signature_invalid(message)


# --- field writers and readers ----------------------------------------------------------------


def _count(reader: Reader, field: str, maximum: int) -> int:
    count = reader.u16(field + ".count")
    if count > maximum:
        raise DecodeError(f"{field} has {count} entries, max {maximum}")
    return count


def _write_pre_prepare(writer: Writer, message: m.PrePrepare) -> None:
    writer.u64(message.view).u64(message.seq).u16(message.replica)
    writer.fixed(message.signature, SIGNATURE_BYTES).bytes32(message.block.encode())


def _read_pre_prepare(reader: Reader) -> m.PrePrepare:
    view = reader.u64("view")
    seq = reader.u64("seq")
    replica = reader.u16("replica")
    signature = reader.fixed(SIGNATURE_BYTES, "signature")
    block: Block = decode_block(reader.bytes32("block", max_bytes=limits.block_bytes_max))
    return m.PrePrepare(view=view, seq=seq, block=block, replica=replica, signature=signature)


# A PREPARE or COMMIT is fixed-size (the tag and `_write_vote`'s fields), and most messages
# are one: they are packed and unpacked in one struct call instead of field by field.
_VOTE = struct.Struct(">BQQ32sH64s")
assert _VOTE.size == 1 + 8 + 8 + HASH_BYTES + 2 + SIGNATURE_BYTES


def _encode_vote(message: m.Prepare | m.Commit) -> bytes:
    assert len(message.digest) == HASH_BYTES, "digest must be 32 bytes"
    assert len(message.signature) == SIGNATURE_BYTES, "signature must be 64 bytes"
    tag = m.TAG_PREPARE if isinstance(message, m.Prepare) else m.TAG_COMMIT
    return _VOTE.pack(
        tag, message.view, message.seq, message.digest, message.replica, message.signature
    )


def _decode_vote(data: bytes) -> m.Prepare | m.Commit | None:
    """A PREPARE or COMMIT from bytes of exactly its size; None for any other tag (the
    general decoder then reads it, or rejects it, as for any other length)."""
    tag, view, seq, digest, replica, signature = _VOTE.unpack(data)
    if tag == m.TAG_PREPARE:
        return m.Prepare(view=view, seq=seq, digest=digest, replica=replica, signature=signature)
    if tag == m.TAG_COMMIT:
        return m.Commit(view=view, seq=seq, digest=digest, replica=replica, signature=signature)
    return None


def _write_vote(writer: Writer, message: m.Prepare | m.Commit) -> None:
    writer.u64(message.view).u64(message.seq).fixed(message.digest, HASH_BYTES)
    writer.u16(message.replica).fixed(message.signature, SIGNATURE_BYTES)


def _read_vote_fields(reader: Reader) -> tuple[int, int, bytes, int, bytes]:
    return (
        reader.u64("view"),
        reader.u64("seq"),
        reader.fixed(HASH_BYTES, "digest"),
        reader.u16("replica"),
        reader.fixed(SIGNATURE_BYTES, "signature"),
    )


def _read_prepare(reader: Reader) -> m.Prepare:
    view, seq, digest, replica, signature = _read_vote_fields(reader)
    return m.Prepare(view=view, seq=seq, digest=digest, replica=replica, signature=signature)


def _read_commit(reader: Reader) -> m.Commit:
    view, seq, digest, replica, signature = _read_vote_fields(reader)
    return m.Commit(view=view, seq=seq, digest=digest, replica=replica, signature=signature)


def _write_checkpoint(writer: Writer, message: m.Checkpoint) -> None:
    writer.u64(message.seq).fixed(message.block_hash, HASH_BYTES)
    writer.fixed(message.app_hash, HASH_BYTES).u16(message.replica)
    writer.fixed(message.signature, SIGNATURE_BYTES)


def _read_checkpoint(reader: Reader) -> m.Checkpoint:
    return m.Checkpoint(
        seq=reader.u64("seq"),
        block_hash=reader.fixed(HASH_BYTES, "block_hash"),
        app_hash=reader.fixed(HASH_BYTES, "app_hash"),
        replica=reader.u16("replica"),
        signature=reader.fixed(SIGNATURE_BYTES, "signature"),
    )


def _write_view_change(writer: Writer, message: m.ViewChange) -> None:
    writer.u64(message.new_view).u64(message.checkpoint_seq)
    writer.fixed(message.checkpoint_block_hash, HASH_BYTES)
    writer.fixed(message.checkpoint_app_hash, HASH_BYTES)
    writer.u16(len(message.checkpoint_proof))
    for checkpoint in message.checkpoint_proof:
        _write_checkpoint(writer, checkpoint)
    writer.u16(len(message.prepared))
    for certificate in message.prepared:
        _write_pre_prepare(writer, certificate.pre_prepare)
        writer.u16(len(certificate.prepares))
        for prepare in certificate.prepares:
            _write_vote(writer, prepare)
    writer.u16(message.replica).fixed(message.signature, SIGNATURE_BYTES)


def _write_new_view(writer: Writer, message: m.NewView) -> None:
    writer.u64(message.view).u16(len(message.view_changes))
    for view_change in message.view_changes:
        _write_view_change(writer, view_change)
    writer.u16(len(message.pre_prepares))
    for pre_prepare in message.pre_prepares:
        _write_pre_prepare(writer, pre_prepare)
    writer.u16(message.replica).fixed(message.signature, SIGNATURE_BYTES)


# --- records for the engine's durable state (consensus/pbft/durable.py) ----------------------


def encode_certificate(certificate: m.PreparedCertificate) -> bytes:
    writer = Writer()
    _write_pre_prepare(writer, certificate.pre_prepare)
    writer.u16(len(certificate.prepares))
    for prepare in certificate.prepares:
        _write_vote(writer, prepare)
    return writer.finish()


def decode_certificate(data: bytes, *, replica_count: int) -> m.PreparedCertificate:
    reader = Reader(data)
    pre_prepare = _read_pre_prepare(reader)
    prepares = tuple(
        _read_prepare(reader) for _ in range(_count(reader, "prepares", replica_count))
    )
    reader.finish("prepared certificate")
    return m.PreparedCertificate(pre_prepare=pre_prepare, prepares=prepares)


def encode_checkpoints(checkpoints: tuple[m.Checkpoint, ...]) -> bytes:
    writer = Writer().u16(len(checkpoints))
    for checkpoint in checkpoints:
        _write_checkpoint(writer, checkpoint)
    return writer.finish()


def decode_checkpoints(data: bytes, *, replica_count: int) -> tuple[m.Checkpoint, ...]:
    reader = Reader(data)
    count = _count(reader, "checkpoints", replica_count)
    checkpoints = tuple(_read_checkpoint(reader) for _ in range(count))
    reader.finish("checkpoints")
    return checkpoints
