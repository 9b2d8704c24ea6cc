"""The single-validator engine: a chain of one, behind the same contract as PBFT and Raft.

With one validator the BFT quorum is 1, so a proposal commits the moment the validator
signs its commit vote; the seal is an ordinary quorum seal (kind 1, view 0) that any
verifier checks exactly like a PBFT seal. Nothing needs persisting before that: the seal
never leaves the node until the node has stored the block, and a block that was signed
but not stored before a crash was seen by no one.

Pipelining follows the exec lag rule of protocol/block.py: a slot for height h is offered
only once h - pipeline_depth is executed, so the node can fill the header's exec fields.
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
    NodeId,
    Output,
    ProposalSlot,
    Propose,
    Received,
    Tick,
)
from protocol.block import Block
from protocol.crypto import SigningKey
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote
from protocol.sealed import SealedBlock
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SoloConfig:
    chain_id: str
    validators: ValidatorSet
    pipeline_depth: int

    def __post_init__(self) -> None:
        assert self.validators.size == 1, "the solo engine runs a chain of exactly one"
        assert self.pipeline_depth >= 1


class SoloEngine:
    def __init__(
        self,
        config: SoloConfig,
        *,
        key: SigningKey,
        committed_height: int,
        committed_hash: bytes,
        executed_height: int,
    ) -> None:
        assert key.public_key == config.validators.public_keys[0], "not this chain's validator"
        assert executed_height <= committed_height
        self._config = config
        self._key = key
        self._committed_height = committed_height
        self._committed_hash = committed_hash
        self._executed_height = executed_height
        self._stale_proposals = 0

    def step(self, event: Event) -> Output:
        match event:
            case Propose(block=block):
                output = self._on_propose(block)
            case BlockExecuted():
                output = self._on_executed(event)
            case Tick() | Received() | Fetched():
                output = NOTHING  # no peers, no timers: nothing to do
        self.check_invariants()
        return output

    def _on_propose(self, block: Block) -> Output:
        if (reason := self._ignore_propose(block)) is not None:
            log.debug("solo ignoring proposal height=%d: %s", block.height, reason)
            self._stale_proposals += 1
            return NOTHING
        assert block.invalid() is None, block.invalid()
        block_hash = block.hash()
        signature = sign_commit_vote(
            self._key,
            chain_id=self._config.chain_id,
            view=0,
            height=block.height,
            block_hash=block_hash,
        )
        seal = Seal(
            kind=SEAL_QUORUM,
            round=0,
            height=block.height,
            block_hash=block_hash,
            signatures=((0, signature),),
        )
        self._committed_height = block.height
        self._committed_hash = block_hash
        log.debug("solo committed height=%d txs=%d", block.height, len(block.txs))
        return Output(commit=(SealedBlock(block=block, seal=seal),))

    def _ignore_propose(self, block: Block) -> str | None:
        """A proposal built for a slot that has since moved on is stale, not an error."""
        slot = self._slot()
        if slot is None:
            return "no open slot"
        if block.height != slot.height:
            return f"slot is height {slot.height}"
        if block.header.prev_hash != slot.prev_hash:
            return "does not link to the committed chain"
        return None

    def _on_executed(self, event: BlockExecuted) -> Output:
        assert event.height == self._executed_height + 1, "blocks execute in height order"
        assert event.height <= self._committed_height
        self._executed_height = event.height
        return NOTHING

    def _slot(self) -> ProposalSlot | None:
        height = self._committed_height + 1
        if self._executed_height < height - self._config.pipeline_depth:
            return None
        return ProposalSlot(height=height, prev_hash=self._committed_hash)

    def status(self) -> EngineStatus:
        return EngineStatus(
            kind="solo",
            node_id=NodeId(0),
            committed_height=self._committed_height,
            round=0,
            leader=NodeId(0),
            role="leader",
            proposal_slot=self._slot(),
            in_flight=0,
            extra={
                "executed_height": self._executed_height,
                "stale_proposals": self._stale_proposals,
            },
        )

    def check_invariants(self) -> None:
        assert self._executed_height <= self._committed_height
        assert self._committed_height - self._executed_height <= self._config.pipeline_depth
