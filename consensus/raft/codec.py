"""Canonical binary encoding of Raft messages, and the stateless checks done at the edge.

Layout (fixed-width big-endian integers, protocol.encoding), one type tag first, the
sender's signature last (what it covers: messages.py):

    REQUEST-VOTE        u8 1 | u64 term | u16 sender | u64 last_index | u64 last_term
                        | u8 pre_vote | u8 transfer | 64B sig
    REQUEST-VOTE-REPLY  u8 2 | u64 term | u16 sender | u8 granted | u8 pre_vote | 64B sig
    APPEND-ENTRIES      u8 3 | u64 term | u16 sender | u64 prev_index | u64 prev_term
                        | u64 leader_commit | u32 count | count x ENTRY | 64B sig
        ENTRY           u64 term | u16 signer | u8 kind (0 no-op, 1 block)
                        | kind 1: 64B seal_sig | bytes32 block
    APPEND-ENTRIES-REPLY u8 4 | u64 term | u16 sender | u8 success | u64 index | 64B sig
    INSTALL-SNAPSHOT    u8 5 | u64 term | u16 sender | u64 last_index | u64 last_term
                        | u64 last_height | 32B block_hash | 64B sig
    TIMEOUT-NOW         u8 6 | u64 term | u16 sender | 64B sig

Decoding is strict (DecodeError on truncation, trailing bytes, unknown tags or kinds, flags
other than 0/1, counts above the bound). `invalid` checks everything that needs no engine
state: the sender, its signature, and for each carried block its chain, its proposer (the
entry's signer), and the leader seal signature, so the engine never sees a forged entry.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.raft import messages as m
from consensus.raft.config import RaftConfig
from consensus.types import NodeId
from protocol import limits
from protocol.block import Block, decode_block
from protocol.crypto import HASH_BYTES, SIGNATURE_BYTES
from protocol.encoding import DecodeError, Reader, Writer

ENTRY_OVERHEAD_BYTES = 8 + 2 + 1 + SIGNATURE_BYTES + 4
# One AppendEntries always fits one maximal block plus a batch of no-ops and its header.
MESSAGE_BYTES_MAX = limits.block_bytes_max + 64 * 1024


class RaftCodec:
    """consensus.types.MessageCodec for Raft, bound to one chain and validator set."""

    def __init__(self, config: RaftConfig, *, message_bytes_max: int = MESSAGE_BYTES_MAX) -> None:
        self._chain_id = config.chain_id
        self._validators = config.validators
        self._entries_max = config.max_entries_per_append
        self._message_bytes_max = message_bytes_max

    # --- encode ---------------------------------------------------------------------------

    def encode(self, message: object) -> bytes:
        if not isinstance(
            message,
            m.RequestVote
            | m.RequestVoteReply
            | m.AppendEntries
            | m.AppendEntriesReply
            | m.InstallSnapshot
            | m.TimeoutNow,
        ):
            raise TypeError(f"not a Raft message: {type(message).__name__}")
        writer = Writer().u8(m.tag_of(message)).u64(message.term).u16(message.sender)
        if isinstance(message, m.RequestVote):
            writer.u64(message.last_index).u64(message.last_term)
            writer.u8(int(message.pre_vote)).u8(int(message.transfer))
        elif isinstance(message, m.RequestVoteReply):
            writer.u8(int(message.granted)).u8(int(message.pre_vote))
        elif isinstance(message, m.AppendEntries):
            writer.u64(message.prev_index).u64(message.prev_term).u64(message.leader_commit)
            writer.u32(len(message.entries))
            for entry in message.entries:
                _write_entry(writer, entry)
        elif isinstance(message, m.AppendEntriesReply):
            writer.u8(int(message.success)).u64(message.index)
        elif isinstance(message, m.InstallSnapshot):
            writer.u64(message.last_index).u64(message.last_term).u64(message.last_height)
            writer.fixed(message.block_hash, HASH_BYTES)
        return writer.fixed(message.signature, SIGNATURE_BYTES).finish()

    # --- decode ---------------------------------------------------------------------------

    def decode(self, data: bytes) -> object:
        if len(data) > self._message_bytes_max:
            raise DecodeError(f"message is {len(data)} bytes, max {self._message_bytes_max}")
        reader = Reader(data)
        tag = reader.u8("tag")
        term, sender = reader.u64("term"), reader.u16("sender")
        message: m.RaftMessage
        if tag == m.TAG_REQUEST_VOTE:
            message = m.RequestVote(
                term=term,
                sender=sender,
                last_index=reader.u64("last_index"),
                last_term=reader.u64("last_term"),
                pre_vote=_flag(reader, "pre_vote"),
                transfer=_flag(reader, "transfer"),
            )
        elif tag == m.TAG_REQUEST_VOTE_REPLY:
            message = m.RequestVoteReply(
                term=term,
                sender=sender,
                granted=_flag(reader, "granted"),
                pre_vote=_flag(reader, "pre_vote"),
            )
        elif tag == m.TAG_APPEND_ENTRIES:
            message = self._read_append(reader, term, sender)
        elif tag == m.TAG_APPEND_ENTRIES_REPLY:
            message = m.AppendEntriesReply(
                term=term,
                sender=sender,
                success=_flag(reader, "success"),
                index=reader.u64("index"),
            )
        elif tag == m.TAG_INSTALL_SNAPSHOT:
            message = m.InstallSnapshot(
                term=term,
                sender=sender,
                last_index=reader.u64("last_index"),
                last_term=reader.u64("last_term"),
                last_height=reader.u64("last_height"),
                block_hash=reader.fixed(HASH_BYTES, "block_hash"),
            )
        elif tag == m.TAG_TIMEOUT_NOW:
            message = m.TimeoutNow(term=term, sender=sender)
        else:
            raise DecodeError(f"unknown Raft message tag {tag}")
        signature = reader.fixed(SIGNATURE_BYTES, "signature")
        reader.finish("Raft message")
        return _with_signature(message, signature)

    def _read_append(self, reader: Reader, term: int, sender: int) -> m.AppendEntries:
        prev_index = reader.u64("prev_index")
        prev_term = reader.u64("prev_term")
        leader_commit = reader.u64("leader_commit")
        count = reader.u32("entries.count")
        if count > self._entries_max:
            raise DecodeError(f"append carries {count} entries, max {self._entries_max}")
        entries = tuple(_read_entry(reader, i) for i in range(count))
        return m.AppendEntries(
            term=term,
            sender=sender,
            prev_index=prev_index,
            prev_term=prev_term,
            entries=entries,
            leader_commit=leader_commit,
        )

    # --- stateless validity -----------------------------------------------------------------

    def invalid(self, message: object, sender: NodeId) -> str | None:
        """None if `message` from `sender` passes every check that needs no engine state."""
        if not isinstance(
            message,
            m.RequestVote
            | m.RequestVoteReply
            | m.AppendEntries
            | m.AppendEntriesReply
            | m.InstallSnapshot
            | m.TimeoutNow,
        ):
            return f"not a Raft message: {type(message).__name__}"
        if message.sender != sender:
            return f"signed by validator {message.sender}, sent by {sender}"
        if not 0 <= message.sender < self._validators.size:
            return f"sender {message.sender} is not a validator"
        if message.term == 0:
            return "term 0 is before any election"
        if (reason := self._fields_invalid(message)) is not None:
            return reason
        if not m.signature_valid(self._chain_id, self._validators, message):
            return f"bad signature from validator {message.sender}"
        return None

    def _fields_invalid(self, message: m.RaftMessage) -> str | None:
        if isinstance(message, m.AppendEntries):
            return self._append_invalid(message)
        if isinstance(message, m.RequestVote) and message.last_term > message.term:
            return "last log term above the campaign's term"
        if isinstance(message, m.InstallSnapshot):
            if message.last_term > message.term:
                return "snapshot term above the message's term"
            if message.last_height > message.last_index:
                return "snapshot height above its index: one block per entry at most"
        return None

    def _append_invalid(self, message: m.AppendEntries) -> str | None:
        if message.prev_term > message.term:
            return "prev term above the message's term"
        previous_term, previous_height = message.prev_term, -1
        for position, entry in enumerate(message.entries):
            where = f"entry {message.prev_index + 1 + position}"
            if not previous_term <= entry.term <= message.term:
                return f"{where}: term {entry.term} out of order"
            if not 0 <= entry.signer < self._validators.size:
                return f"{where}: signer {entry.signer} is not a validator"
            if entry.term == message.term and entry.signer != message.sender:
                return f"{where}: an entry of this term not signed by its leader"
            previous_term = entry.term
            block = entry.block
            if block is None:
                continue
            if block.header.chain_id != self._chain_id:
                return f"{where}: block is for another chain"
            if previous_height >= 0 and block.height != previous_height + 1:
                return f"{where}: block heights are not consecutive"
            previous_height = block.height
            if block.header.proposer != self._validators.public_keys[entry.signer]:
                return f"{where}: block proposer is not the entry's signer"
            if not m.seal_signature_valid(self._chain_id, self._validators, entry):
                return f"{where}: bad leader seal signature"
        return None

    def carried_blocks(self, message: object) -> tuple[Block, ...]:
        """Blocks inside an AppendEntries: the node checks their txs' signatures."""
        if not isinstance(message, m.AppendEntries):
            return ()
        return tuple(entry.block for entry in message.entries if entry.block is not None)


def _flag(reader: Reader, field: str) -> bool:
    value = reader.u8(field)
    if value > 1:
        raise DecodeError(f"{field} must be 0 or 1, got {value}")
    return value == 1


def _write_entry(writer: Writer, entry: m.Entry) -> None:
    writer.u64(entry.term).u16(entry.signer).u8(entry.kind)
    if entry.block is not None:
        writer.fixed(entry.seal_signature, SIGNATURE_BYTES).bytes32(entry.block.encode())


def _read_entry(reader: Reader, position: int) -> m.Entry:
    term = reader.u64(f"entry[{position}].term")
    signer = reader.u16(f"entry[{position}].signer")
    kind = reader.u8(f"entry[{position}].kind")
    if kind == m.ENTRY_NOOP:
        return m.Entry(term=term, signer=signer, block=None)
    if kind != m.ENTRY_BLOCK:
        raise DecodeError(f"entry[{position}] has unknown kind {kind}")
    seal_signature = reader.fixed(SIGNATURE_BYTES, f"entry[{position}].seal_signature")
    raw = reader.bytes32(f"entry[{position}].block", max_bytes=limits.block_bytes_max)
    return m.Entry(term=term, signer=signer, block=decode_block(raw), seal_signature=seal_signature)


def encode_entry(entry: m.Entry) -> bytes:
    """An entry on its own: the durable log record (durable.py) uses the wire form."""
    writer = Writer()
    _write_entry(writer, entry)
    return writer.finish()


def decode_entry(data: bytes) -> m.Entry:
    reader = Reader(data)
    entry = _read_entry(reader, 0)
    reader.finish("log entry")
    return entry


def _with_signature(message: m.RaftMessage, signature: bytes) -> m.RaftMessage:
    return replace(message, signature=signature)
