"""The PBFT engine's durable records: what `Output.persist` writes and a restart reads back.

Rule (RELIABILITY C1): every message this replica signs that commits it to something is
persisted *before* it is sent (the driver syncs `persist` before `send`), so a restarted
replica never signs a conflicting message for the same (view, seq).

    b"pbft/view"               u64 view | u8 active      the view this replica is in, or is
                                                         changing to (active = 0)
    b"pbft/vote/" u8 kind u64 seq  u64 view | 32B digest  my PRE-PREPARE (kind 1, primary),
                                                         PREPARE (2) or COMMIT (3) at seq; a
                                                         vote in a newer view overwrites it
    b"pbft/cert/" u64 seq      a prepared certificate     the highest-view certificate at seq
                               (pre-prepare with block, prepares), so a VIEW-CHANGE after a
                               restart still carries it (§4.4) and the block is re-obtainable
    b"pbft/stable"             u64 seq | 32B block_hash | 32B app_hash | checkpoints proof

Records are compact: votes are digests; only certificates carry blocks. Everything at or
below the stable checkpoint is deleted when the checkpoint becomes stable (§4.3 GC).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from consensus.pbft.checkpoint import GENESIS_STABLE, StableCheckpoint
from consensus.pbft.codec import (
    decode_certificate,
    decode_checkpoints,
    encode_certificate,
    encode_checkpoints,
)
from consensus.pbft.messages import PreparedCertificate
from protocol.crypto import HASH_BYTES
from protocol.encoding import DecodeError, Reader, Writer

log = logging.getLogger(__name__)

VIEW_KEY = b"pbft/view"
STABLE_KEY = b"pbft/stable"
_VOTE_PREFIX = b"pbft/vote/"
_CERT_PREFIX = b"pbft/cert/"

VOTE_PRE_PREPARE = 1
VOTE_PREPARE = 2
VOTE_COMMIT = 3
VOTE_KINDS = (VOTE_PRE_PREPARE, VOTE_PREPARE, VOTE_COMMIT)

Record = tuple[bytes, bytes | None]


def view_record(view: int, *, active: bool) -> Record:
    return VIEW_KEY, Writer().u64(view).u8(int(active)).finish()


# A replica records two or three votes per block, so their fixed layouts are one struct
# call each: key u8 kind | u64 seq, value u64 view | 32B digest.
_KIND_SEQ = struct.Struct(">BQ")
_VIEW = struct.Struct(">Q")


def vote_key(kind: int, seq: int) -> bytes:
    assert kind in VOTE_KINDS
    return _VOTE_PREFIX + _KIND_SEQ.pack(kind, seq)


def vote_record(kind: int, *, seq: int, view: int, digest: bytes) -> Record:
    assert len(digest) == HASH_BYTES, "digest must be 32 bytes"
    return vote_key(kind, seq), _VIEW.pack(view) + digest


def certificate_key(seq: int) -> bytes:
    return _CERT_PREFIX + Writer().u64(seq).finish()


def certificate_record(certificate: PreparedCertificate) -> Record:
    return certificate_key(certificate.seq), encode_certificate(certificate)


def stable_record(stable: StableCheckpoint) -> Record:
    writer = Writer().u64(stable.seq).fixed(stable.block_hash, HASH_BYTES)
    writer.fixed(stable.app_hash, HASH_BYTES).raw(encode_checkpoints(stable.proof))
    return STABLE_KEY, writer.finish()


def deletes_up_to(low: int, new_low: int) -> list[Record]:
    """Deletes of every vote and certificate record for seqs in (low, new_low]."""
    records: list[Record] = []
    for seq in range(low + 1, new_low + 1):
        records.extend((vote_key(kind, seq), None) for kind in VOTE_KINDS)
        records.append((certificate_key(seq), None))
    return records


@dataclass(slots=True)
class RestoredState:
    view: int = 0
    active: bool = True
    votes: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (kind, seq) -> digest
    certificates: dict[int, PreparedCertificate] = field(default_factory=dict)
    stable: StableCheckpoint = GENESIS_STABLE


def restore(records: Mapping[bytes, bytes], *, replica_count: int) -> RestoredState:
    """Parse the engine's records. A record that does not decode is our own corruption
    (we wrote it, synced), so it stops the node rather than being skipped."""
    state = RestoredState()
    if (raw := records.get(VIEW_KEY)) is not None:
        reader = Reader(raw)
        state.view, state.active = reader.u64("view"), bool(reader.u8("active"))
        reader.finish("view record")
    if (raw := records.get(STABLE_KEY)) is not None:
        state.stable = _decode_stable(raw, replica_count=replica_count)
    for key, raw in sorted(records.items()):
        if key.startswith(_VOTE_PREFIX):
            _restore_vote(state, key, raw)
        elif key.startswith(_CERT_PREFIX):
            certificate = decode_certificate(raw, replica_count=replica_count)
            if certificate.seq > state.stable.seq:
                state.certificates[certificate.seq] = certificate
    return state


def _restore_vote(state: RestoredState, key: bytes, raw: bytes) -> None:
    key_reader = Reader(key[len(_VOTE_PREFIX) :])
    kind, seq = key_reader.u8("kind"), key_reader.u64("seq")
    key_reader.finish("vote key")
    if kind not in VOTE_KINDS:
        raise DecodeError(f"unknown vote kind {kind}")
    reader = Reader(raw)
    view, digest = reader.u64("view"), reader.fixed(HASH_BYTES, "digest")
    reader.finish("vote record")
    if view == state.view and seq > state.stable.seq:
        state.votes[(kind, seq)] = digest


def _decode_stable(raw: bytes, *, replica_count: int) -> StableCheckpoint:
    reader = Reader(raw)
    seq = reader.u64("seq")
    block_hash = reader.fixed(HASH_BYTES, "block_hash")
    app_hash = reader.fixed(HASH_BYTES, "app_hash")
    proof = decode_checkpoints(reader.fixed(reader.remaining, "proof"), replica_count=replica_count)
    return StableCheckpoint(seq=seq, block_hash=block_hash, app_hash=app_hash, proof=proof)
