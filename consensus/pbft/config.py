"""PBFT engine configuration: protocol constants, timeouts (in ticks) and bounds.

Every number has a unit suffix; the relations between them are checked by `PbftConfig.check`
(called by the engine constructor), the Python version of TigerBeetle's comptime asserts.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits
from protocol.validators import ValidatorSet


@dataclass(frozen=True, slots=True, kw_only=True)
class PbftConfig:
    chain_id: str
    validators: ValidatorSet
    node_id: int
    # Execution lags consensus by P blocks (protocol/block.py); fixed by genesis.
    pipeline_depth: int = 2
    # §4.3: a checkpoint every K seqs; the log holds (h, h + L] where h is the stable one.
    checkpoint_interval_seqs: int = 16
    watermark_window_seqs: int = 64
    # §4.4: a backup with pending work waits this long before voting for a view change;
    # each further view change in a row doubles it, up to the cap.
    view_change_timeout_ticks: int = 20
    view_change_timeout_ticks_max: int = 20 * 64
    # Backups also offer a proposal slot: the node's `Propose` at a backup means "I hold
    # txs that wait to be ordered", the paper's forwarded client request (§4.1), and starts
    # the view-change timer until that height commits. Off: backups only time out on
    # pre-prepares they hold.
    backups_offer_slots: bool = True
    # A primary re-broadcasts NEW-VIEW / replicas re-send VIEW-CHANGE at this period while a
    # view change is unfinished (messages may have been dropped).
    retransmit_ticks: int = 10
    # Bounds on memory held for peers.
    future_messages_per_peer_max: int = 256  # buffered messages for a later view / far seq
    pending_pre_prepares_max: int = 64  # pre-prepares waiting for execution of seq - P
    fetch_retry_ticks: int = 20  # a catch-up request unanswered this long goes to another peer
    fetch_batch_max: int = 64  # blocks asked for in one FetchRequest

    @property
    def replica_count(self) -> int:
        return self.validators.size

    @property
    def quorum(self) -> int:
        return self.validators.quorum

    @property
    def weak_quorum(self) -> int:
        return self.validators.max_faulty + 1

    def primary_of(self, view: int) -> int:
        return view % self.validators.size

    def check(self) -> None:
        """Assert every relation the protocol relies on; a bad config never starts."""
        assert 0 <= self.node_id < self.validators.size, "node id must index the validator set"
        assert self.validators.size <= limits.validators_max
        assert self.pipeline_depth >= 1
        assert self.checkpoint_interval_seqs >= 1
        assert self.watermark_window_seqs % self.checkpoint_interval_seqs == 0, "L = m * K"
        assert self.watermark_window_seqs >= 2 * self.checkpoint_interval_seqs, (
            "the log must keep going while the next checkpoint stabilises"
        )
        assert self.watermark_window_seqs >= self.pipeline_depth, "P blocks must fit in (h, H]"
        assert 1 <= self.view_change_timeout_ticks <= self.view_change_timeout_ticks_max
        assert self.retransmit_ticks >= 1
        assert self.future_messages_per_peer_max >= 1
        assert self.pending_pre_prepares_max >= self.pipeline_depth
        assert self.fetch_retry_ticks >= 1
        assert self.fetch_batch_max >= 1
