"""The follower engine: a non-validator full node (a read replica) that follows the chain
by fetching sealed blocks from peers and checking every seal against the genesis
validator set before committing anything.

It never signs or votes. Each `fetch_interval_ticks` without progress it asks for the next
`fetch_batch_blocks` heights (the driver picks a peer); a batch that fails any check (a
seal that doesn't verify, a gap, a block that doesn't link) is dropped whole and counted,
and the next request goes to another peer, so one lying peer cannot feed it a fork.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from consensus.types import (
    NOTHING,
    BlockExecuted,
    EngineStatus,
    Event,
    Fetched,
    FetchRequest,
    NodeId,
    Output,
    Propose,
    Received,
    Tick,
)
from protocol.sealed import SealedBlock
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowerConfig:
    chain_id: str
    validators: ValidatorSet
    fetch_interval_ticks: int = 5
    fetch_batch_blocks: int = 64
    commit_window_blocks: int = 256  # committed but not yet executed, at most

    def __post_init__(self) -> None:
        assert self.fetch_interval_ticks >= 1
        assert 1 <= self.fetch_batch_blocks <= self.commit_window_blocks


class FollowerEngine:
    def __init__(
        self, config: FollowerConfig, *, committed_height: int, committed_hash: bytes
    ) -> None:
        self._config = config
        self._committed_height = committed_height
        self._committed_hash = committed_hash
        self._executed_height = committed_height
        self._ticks_since_fetch = config.fetch_interval_ticks  # fetch on the first tick
        self._peer_turn = 0
        self.rejected_batches = 0

    def step(self, event: Event) -> Output:
        match event:
            case Tick():
                output = self._on_tick()
            case Fetched(sender=sender, blocks=blocks):
                output = self._on_fetched(sender, blocks)
            case BlockExecuted(height=height):
                assert height == self._executed_height + 1
                self._executed_height = height
                output = NOTHING
            case Received() | Propose():
                output = NOTHING  # a follower takes no part in consensus
        self.check_invariants()
        return output

    def _on_tick(self) -> Output:
        self._ticks_since_fetch += 1
        if self._ticks_since_fetch < self._config.fetch_interval_ticks:
            return NOTHING
        if self._committed_height - self._executed_height >= self._config.commit_window_blocks:
            return NOTHING  # let execution catch up before asking for more
        self._ticks_since_fetch = 0
        self._peer_turn += 1
        start = self._committed_height + 1
        request = FetchRequest(
            from_height=start,
            to_height=start + self._config.fetch_batch_blocks - 1,
            peer=NodeId(self._peer_turn % self._config.validators.size),
        )
        return Output(fetch=(request,))

    def _on_fetched(self, sender: NodeId, blocks: tuple[SealedBlock, ...]) -> Output:
        accepted: list[SealedBlock] = []
        height, block_hash = self._committed_height, self._committed_hash
        for sealed in blocks:
            if sealed.height <= height:
                continue  # already have it
            reason = self._invalid(sealed, height=height, prev_hash=block_hash)
            if reason is not None:
                self.rejected_batches += 1
                log.warning(
                    "follower rejecting blocks from %d at %d: %s", sender, sealed.height, reason
                )
                break
            accepted.append(sealed)
            height, block_hash = sealed.height, sealed.block.hash()
        if not accepted:
            return NOTHING
        self._committed_height, self._committed_hash = height, block_hash
        self._ticks_since_fetch = self._config.fetch_interval_ticks  # more may wait
        return Output(commit=tuple(accepted))

    def _invalid(self, sealed: SealedBlock, *, height: int, prev_hash: bytes) -> str | None:
        if sealed.height != height + 1:
            return f"gap: expected height {height + 1}"
        if sealed.block.header.chain_id != self._config.chain_id:
            return "another chain"
        if sealed.block.header.prev_hash != prev_hash:
            return "does not link to the committed chain"
        return sealed.invalid_for(self._config.validators)

    def status(self) -> EngineStatus:
        return EngineStatus(
            kind="follower",
            node_id=NodeId(-1),
            committed_height=self._committed_height,
            round=0,
            leader=None,
            role="follower",
            proposal_slot=None,
            extra={
                "executed_height": self._executed_height,
                "rejected_batches": self.rejected_batches,
            },
        )

    def check_invariants(self) -> None:
        assert self._executed_height <= self._committed_height
