"""Checkpoints and the stable checkpoint (PBFT §4.3).

Every K seqs, after executing the block at that height, a replica signs and broadcasts
CHECKPOINT(seq, block_hash, app_hash). A quorum of matching CHECKPOINTs from distinct
replicas makes the checkpoint stable: the log below it is garbage-collected, the low
watermark moves to it, and the quorum of signed messages is kept as its proof, which
VIEW-CHANGE messages carry and which lets a lagging replica trust the hash it fetches to.

Bounds: per replica at most `per_replica_max` checkpoints above the stable one are kept (a
replica far ahead may send many; the oldest go first), so memory is O(n * per_replica_max).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from consensus.pbft.messages import GENESIS_CHECKPOINT_HASH, Checkpoint
from protocol.crypto import ZERO_HASH

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StableCheckpoint:
    seq: int
    block_hash: bytes
    app_hash: bytes
    proof: tuple[Checkpoint, ...]  # empty only for seq 0, the genesis

    @property
    def triple(self) -> tuple[int, bytes, bytes]:
        return self.seq, self.block_hash, self.app_hash


GENESIS_STABLE = StableCheckpoint(
    seq=0, block_hash=GENESIS_CHECKPOINT_HASH, app_hash=ZERO_HASH, proof=()
)


class CheckpointTracker:
    """Collects CHECKPOINT votes above the stable checkpoint and reports new stable ones."""

    def __init__(self, *, stable: StableCheckpoint, quorum: int, per_replica_max: int) -> None:
        assert quorum >= 1
        assert per_replica_max >= 1
        self.stable = stable
        self._quorum = quorum
        self._per_replica_max = per_replica_max
        self._votes: dict[int, dict[int, Checkpoint]] = {}  # seq -> replica -> checkpoint

    def add(self, checkpoint: Checkpoint) -> StableCheckpoint | None:
        """Record a vote; the new stable checkpoint if this vote completed a quorum."""
        if checkpoint.seq <= self.stable.seq:
            return None
        votes = self._votes.setdefault(checkpoint.seq, {})
        if checkpoint.replica in votes:
            return None
        votes[checkpoint.replica] = checkpoint
        self._bound_replica(checkpoint.replica)
        matching = [
            vote
            for _, vote in sorted(votes.items())
            if (vote.block_hash, vote.app_hash) == (checkpoint.block_hash, checkpoint.app_hash)
        ]
        if len(matching) < self._quorum:
            return None
        return StableCheckpoint(
            seq=checkpoint.seq,
            block_hash=checkpoint.block_hash,
            app_hash=checkpoint.app_hash,
            proof=tuple(matching),
        )

    def _bound_replica(self, replica: int) -> None:
        seqs = sorted(seq for seq, votes in self._votes.items() if replica in votes)
        for seq in seqs[: max(0, len(seqs) - self._per_replica_max)]:
            del self._votes[seq][replica]
            if not self._votes[seq]:
                del self._votes[seq]

    def make_stable(self, stable: StableCheckpoint) -> None:
        """Adopt `stable` (from a quorum here, or a proof in a NEW-VIEW) and drop older votes."""
        assert stable.seq > self.stable.seq
        self.stable = stable
        for seq in [seq for seq in self._votes if seq <= stable.seq]:
            del self._votes[seq]

    def votes_held(self) -> int:
        return sum(len(votes) for votes in self._votes.values())

    def check_invariants(self, replica_count: int) -> None:
        stable = self.stable
        if self._votes:  # runs after every engine step: nothing to walk in the usual case
            assert min(self._votes) > stable.seq
            assert self.votes_held() <= replica_count * self._per_replica_max
        assert stable.seq == 0 or len(stable.proof) >= self._quorum
