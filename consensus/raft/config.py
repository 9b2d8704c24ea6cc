"""Raft engine configuration: timeouts (in ticks), features and bounds.

Every number has a unit suffix; `RaftConfig.check` (called by the engine constructor)
asserts the relations between them, so a bad config never starts. The features that must
agree across the cluster (pre-vote, check-quorum, entries per append, pipeline depth) come
from genesis; timeouts are local.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits
from protocol.validators import ValidatorSet


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    chain_id: str
    validators: ValidatorSet
    node_id: int
    # Execution lags consensus by P blocks (protocol/block.py); fixed by genesis.
    pipeline_depth: int = 2
    # §5.2: each follower / candidate draws its election timeout uniformly from
    # [election_timeout_ticks, election_timeout_ticks_max] with the injected RNG.
    election_timeout_ticks: int = 10
    election_timeout_ticks_max: int | None = None  # inclusive; None: 2 * min - 1
    heartbeat_ticks: int = 2
    pre_vote: bool = True  # thesis §9.6
    check_quorum: bool = True  # thesis §6.2 (leader steps down) and §4.2.3 (voter lease)
    # Batching: one AppendEntries carries at most this many entries and (beyond its first
    # entry, which always goes) this many bytes of blocks.
    max_entries_per_append: int = 64
    append_bytes_max: int = 1024 * 1024
    # Pipelining: a leader keeps at most this many entries sent but unacknowledged per
    # follower, and offers a proposal slot only while fewer than this many of its entries
    # are uncommitted.
    inflight_entries_max: int = 128
    uncommitted_entries_max: int = 8
    # Compaction: executed entries older than this many heights are dropped from the log
    # (and from durable state); a follower that far behind gets InstallSnapshot.
    log_retention_heights: int = 256
    compaction_step_heights: int = 64  # compact in steps, not on every block
    # Snapshot catch-up through block sync.
    fetch_retry_ticks: int = 20
    fetch_batch_max: int = 64

    @property
    def replica_count(self) -> int:
        return self.validators.size

    @property
    def majority(self) -> int:
        return self.validators.crash_quorum

    @property
    def timeout_ticks_max(self) -> int:
        maximum = self.election_timeout_ticks_max
        return 2 * self.election_timeout_ticks - 1 if maximum is None else maximum

    def check(self) -> None:
        assert 0 <= self.node_id < self.validators.size, "node id must index the validator set"
        assert self.validators.size <= limits.validators_max
        assert self.pipeline_depth >= 1
        assert self.heartbeat_ticks >= 1
        assert self.election_timeout_ticks > 2 * self.heartbeat_ticks, (
            "followers must hear a few heartbeats per election timeout"
        )
        assert self.timeout_ticks_max > self.election_timeout_ticks, "timeouts must spread"
        assert self.max_entries_per_append >= 1
        assert self.append_bytes_max >= 1
        assert self.inflight_entries_max >= self.max_entries_per_append
        assert self.uncommitted_entries_max >= self.pipeline_depth, "P blocks must fit in flight"
        assert self.inflight_entries_max >= self.uncommitted_entries_max
        assert self.log_retention_heights >= self.pipeline_depth
        assert self.compaction_step_heights >= 1
        assert self.fetch_retry_ticks >= 1
        assert self.fetch_batch_max >= 1
