"""The Raft engine's durable records: what `Output.persist` writes and a restart reads back.

Figure 2's persistent state on all servers — currentTerm, votedFor, log[] — is written
before any reply that depends on it leaves the node (the driver syncs `persist` before
`send`): a vote is durable before RequestVoteReply(granted), entries before
AppendEntriesReply(success), a leader's own entry before the AppendEntries carrying it.

    b"raft/hard"                 u64 term | u8 has_vote | u16 voted_for
    b"raft/base"                 u64 index | u64 term | u64 height | 32B block_hash
                                 the compacted prefix (§7), or an installed snapshot
    b"raft/entry/" u64 index     codec.encode_entry(entry) for each index above the base

The committed chain itself lives in the node's chain store; entries at or below the base are
deleted when the base moves. A record that does not decode is our own corruption (we wrote
and synced it), so it stops the node rather than being skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consensus.raft.codec import decode_entry, encode_entry
from consensus.raft.log import EMPTY_BASE, LogBase
from consensus.raft.messages import Entry
from protocol.crypto import HASH_BYTES
from protocol.encoding import Reader, Writer

HARD_STATE_KEY = b"raft/hard"
BASE_KEY = b"raft/base"
ENTRY_PREFIX = b"raft/entry/"

Record = tuple[bytes, bytes | None]


def hard_state_record(term: int, voted_for: int | None) -> Record:
    writer = Writer().u64(term).u8(voted_for is not None).u16(voted_for or 0)
    return HARD_STATE_KEY, writer.finish()


def base_record(base: LogBase) -> Record:
    writer = Writer().u64(base.index).u64(base.term).u64(base.height)
    return BASE_KEY, writer.fixed(base.block_hash, HASH_BYTES).finish()


def entry_key(index: int) -> bytes:
    return ENTRY_PREFIX + Writer().u64(index).finish()


def entry_record(index: int, entry: Entry) -> Record:
    return entry_key(index), encode_entry(entry)


def entry_deletes(indices: list[int]) -> list[Record]:
    return [(entry_key(index), None) for index in indices]


@dataclass(slots=True)
class RestoredState:
    term: int = 0
    voted_for: int | None = None
    base: LogBase = EMPTY_BASE
    entries: list[Entry] = field(default_factory=list)  # indices base + 1, base + 2, ...


def restore(records: Mapping[bytes, bytes]) -> RestoredState:
    state = RestoredState()
    if (raw := records.get(HARD_STATE_KEY)) is not None:
        reader = Reader(raw)
        state.term = reader.u64("term")
        has_vote, voted_for = reader.u8("has_vote"), reader.u16("voted_for")
        reader.finish("hard state")
        state.voted_for = voted_for if has_vote else None
    if (raw := records.get(BASE_KEY)) is not None:
        reader = Reader(raw)
        state.base = LogBase(
            index=reader.u64("index"),
            term=reader.u64("term"),
            height=reader.u64("height"),
            block_hash=reader.fixed(HASH_BYTES, "block_hash"),
        )
        reader.finish("log base")
    indexed: dict[int, Entry] = {}
    for key, raw in records.items():
        if key.startswith(ENTRY_PREFIX):
            reader = Reader(key[len(ENTRY_PREFIX) :])
            index = reader.u64("index")
            reader.finish("entry key")
            if index > state.base.index:
                indexed[index] = decode_entry(raw)
    expected = state.base.index + 1
    for index in sorted(indexed):
        assert index == expected, f"durable Raft log has a gap at {expected} (found {index})"
        state.entries.append(indexed[index])
        expected += 1
    return state
