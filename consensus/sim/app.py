"""A deterministic stand-in for services/: just enough application to check execution.

Each tx executes once per (signer, nonce), ever: the first time it gets code 0, every later
copy (the same tx proposed again by another primary, or re-signed) gets `CODE_REPLAY`. The
app hash chains every executed block:

    app_hash(h) = sha256(app_hash(h - 1) || block_hash(h) || hash of each tx that ran at h)

with app_hash(0) = 32 zero bytes, and the results root is protocol.results.results_root of
one TxResult per tx in block order. Two honest nodes that execute the same chain therefore
report the same app hash and results root at every height, which the checkers compare
(RELIABILITY S4), and a header's exec fields can be checked against them.

The state (replay keys, per-height results) is durable: in the real node it lands in the
same synced batch as the block, so a crash never separates the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.types import BlockExecuted
from protocol.block import Block
from protocol.crypto import ZERO_HASH, sha256
from protocol.results import TxResult, results_root

CODE_REPLAY = 3
REPLAY_LOG = "replay"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutedBlock:
    height: int
    block_hash: bytes
    app_hash: bytes
    results: tuple[TxResult, ...]
    results_root: bytes
    executed_tx_hashes: tuple[bytes, ...]  # the txs that ran (code 0), in block order

    def notice(self) -> BlockExecuted:
        return BlockExecuted(
            height=self.height,
            block_hash=self.block_hash,
            app_hash=self.app_hash,
            results_root=self.results_root,
        )


class FakeApplication:
    """Executes committed blocks strictly in height order."""

    def __init__(self) -> None:
        self._replay_keys: set[bytes] = set()
        self.blocks: list[ExecutedBlock] = []  # index h - 1 holds height h

    @property
    def height(self) -> int:
        return len(self.blocks)

    @property
    def app_hash(self) -> bytes:
        return self.blocks[-1].app_hash if self.blocks else ZERO_HASH

    def at(self, height: int) -> ExecutedBlock | None:
        """The execution of `height`, or None if not executed yet (height >= 1)."""
        assert height >= 1
        return self.blocks[height - 1] if height <= len(self.blocks) else None

    def has_executed(self, replay_key: bytes) -> bool:
        return replay_key in self._replay_keys

    def execute(self, block: Block) -> ExecutedBlock:
        assert block.height == self.height + 1, (
            f"execute height {block.height} after {self.height}: blocks run strictly in order"
        )
        block_hash = block.hash()
        results: list[TxResult] = []
        ran: list[bytes] = []
        tx_hashes = block.tx_hashes()
        for tx, tx_hash in zip(block.txs, tx_hashes, strict=True):
            if tx.replay_key in self._replay_keys:
                results.append(TxResult(code=CODE_REPLAY, log=REPLAY_LOG))
                continue
            self._replay_keys.add(tx.replay_key)
            results.append(TxResult(code=0))
            ran.append(tx_hash)
        executed = ExecutedBlock(
            height=block.height,
            block_hash=block_hash,
            app_hash=sha256(self.app_hash + block_hash + b"".join(ran)),
            results=tuple(results),
            results_root=results_root(results),
            executed_tx_hashes=tuple(ran),
        )
        self.blocks.append(executed)
        return executed
