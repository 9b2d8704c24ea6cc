"""Block production: when to cut a block, and building it for the engine's proposal slot.

A block is cut when the engine offers a slot (we are primary/leader, inside the window,
and height - pipeline_depth is executed) and either enough txs wait to fill a block, or
some txs wait and `block_interval_ms` has passed since our last proposal. Under load the
pipeline is full most of the time, so txs pile up and blocks grow; under light load a
lone tx is proposed within one interval. No empty blocks, except:
- "proof blocks": while any of the last `pipeline_depth` committed blocks held txs, empty
  blocks are cut so that those blocks' results get attested by a later sealed header
  (protocol/block.py) — without them the last results of a burst would wait forever;
- `create_empty_blocks = true`, which cuts one every `empty_block_interval_ms`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from consensus.types import EngineStatus, ProposalSlot
from protocol.block import Block, make_block
from protocol.crypto import SigningKey
from protocol.tx import Tx

log = logging.getLogger(__name__)


class TxSource(Protocol):
    def pending_count(self) -> int: ...

    def reap(self, *, max_txs: int, max_bytes: int) -> list[Tx]:
        """Txs for a block, marked in flight until committed or returned."""
        ...


ExecFields = Callable[[int], tuple[int, bytes, bytes]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerConfig:
    chain_id: str
    validators_hash: bytes
    pipeline_depth: int
    block_max_txs: int
    block_max_bytes: int
    block_interval_ms: int
    create_empty_blocks: bool
    empty_block_interval_ms: int


class BlockProducer:
    def __init__(
        self,
        config: ProducerConfig,
        *,
        key: SigningKey,
        txs: TxSource,
        exec_fields: ExecFields,
        monotonic_ms: Callable[[], int],
        wall_ms: Callable[[], int],
    ) -> None:
        self._config = config
        self._key = key
        self._txs = txs
        self._exec_fields = exec_fields
        self._monotonic_ms = monotonic_ms
        self._wall_ms = wall_ms
        self._last_proposed: tuple[int, int] = (-1, 0)  # (round, height)
        self._last_proposal_ms = -(10**12)
        self._last_block_time_ms = 0
        self._last_tx_height = 0  # highest committed height whose block held txs
        self._committed_height = 0

    def on_committed(self, *, height: int, tx_count: int, time_ms: int) -> None:
        self._committed_height = height
        self._last_block_time_ms = max(self._last_block_time_ms, time_ms)
        if tx_count:
            self._last_tx_height = height

    def maybe_build(self, status: EngineStatus) -> Block | None:
        slot = status.proposal_slot
        if slot is None or (status.round, slot.height) <= self._last_proposed:
            return None
        now = self._monotonic_ms()
        if not self._should_cut(slot, now):
            return None
        # A PBFT backup's `Propose` only tells its engine "txs wait here: expect them
        # ordered, or suspect the primary" (consensus/pbft/engine.py _note_request). An
        # empty block says that as well as a full one, costs nothing to build, and leaves
        # the txs pending in the pool for the primary's gossip copy to be ordered.
        is_backup = status.leader is not None and status.leader != status.node_id
        block = self._build(slot, with_txs=not is_backup)
        self._last_proposed = (status.round, slot.height)
        self._last_proposal_ms = now
        log.debug("proposing height=%d txs=%d", block.height, len(block.txs))
        return block

    def _should_cut(self, slot: ProposalSlot, now: int) -> bool:
        pending = self._txs.pending_count()
        since_last = now - self._last_proposal_ms
        if pending >= self._config.block_max_txs:
            return True
        if pending and since_last >= self._config.block_interval_ms:
            return True
        if self._proof_block_due(slot):
            return since_last >= self._config.block_interval_ms
        if self._config.create_empty_blocks:
            return since_last >= self._config.empty_block_interval_ms
        return False

    def _proof_block_due(self, slot: ProposalSlot) -> bool:
        """Results of block h are attested by the header of h + pipeline_depth."""
        return self._last_tx_height > 0 and slot.height <= (
            self._last_tx_height + self._config.pipeline_depth
        )

    def _build(self, slot: ProposalSlot, *, with_txs: bool) -> Block:
        txs = (
            self._txs.reap(
                max_txs=self._config.block_max_txs, max_bytes=self._config.block_max_bytes
            )
            if with_txs
            else []
        )
        exec_height, exec_app_hash, exec_results_root = self._exec_fields(slot.height)
        time_ms = max(self._wall_ms(), self._last_block_time_ms)
        self._last_block_time_ms = time_ms
        return make_block(
            chain_id=self._config.chain_id,
            height=slot.height,
            prev_hash=slot.prev_hash,
            time_ms=time_ms,
            proposer=self._key.public_key,
            txs=tuple(txs),
            validators_hash=self._config.validators_hash,
            exec_height=exec_height,
            exec_app_hash=exec_app_hash,
            exec_results_root=exec_results_root,
        )
