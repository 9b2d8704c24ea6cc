"""What the RPC server needs from a running node (node/node.py implements it).

The RPC layer (node/rpc/) depends only on this Protocol and on protocol/ objects, so it can
be tested in-process against any implementation and the node can change behind it.
All methods are called on the node's event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.block import BlockHeader
from protocol.merkle import MerkleProof
from protocol.results import TxResult
from protocol.seal import Seal
from protocol.sealed import SealedBlock
from protocol.tx import Tx


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitResult:
    """Mempool admission. code 0: admitted (or already pending); otherwise refused."""

    tx_hash: bytes
    code: int
    log: str = ""
    codespace: str = ""  # "mempool" (full, duplicate, too large, bad signature…) or a service


@dataclass(frozen=True, slots=True, kw_only=True)
class CommittedTx:
    tx_hash: bytes
    height: int
    index: int
    tx: Tx
    result: TxResult


@dataclass(frozen=True, slots=True, kw_only=True)
class TxProof:
    """Everything needed to check offline, with only the genesis file, that `tx` was
    committed at `height`: the Merkle path to the header's txs root, the header, the seal."""

    tx: Tx
    height: int
    index: int
    merkle_proof: MerkleProof
    header: BlockHeader
    seal: Seal


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeEvent:
    """Published to subscribers. kind: "NewBlock" or "Tx"."""

    kind: str
    height: int
    data: Mapping[str, Any] = field(default_factory=dict)
    # For kind "Tx": the tx kind and its events' attributes, used by subscription queries.
    attributes: Mapping[str, str] = field(default_factory=dict)


class NodeApi(Protocol):
    # --- info ---
    def status(self) -> dict[str, Any]: ...

    def genesis(self) -> dict[str, Any]: ...

    def validators(self) -> list[dict[str, Any]]: ...

    def net_info(self) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]:
        """Empty dict when healthy; raises RuntimeError with the reason otherwise."""
        ...

    # --- transactions ---
    async def submit_tx(self, raw: bytes) -> SubmitResult: ...

    async def submit_txs(self, raws: list[bytes]) -> list[SubmitResult]: ...

    async def wait_for_commit(self, tx_hash: bytes, *, timeout_s: float) -> CommittedTx | None:
        """The committed tx once it is executed and durable; None on timeout."""
        ...

    def num_unconfirmed_txs(self) -> tuple[int, int]:
        """(count, bytes) in the mempool."""
        ...

    def unconfirmed_txs(self, limit: int) -> list[Tx]: ...

    # --- blocks and txs ---
    def latest_height(self) -> int: ...

    def sealed_block(self, height: int) -> SealedBlock | None: ...

    def block_height_of(self, block_hash: bytes) -> int | None: ...

    def block_results(self, height: int) -> tuple[TxResult, ...] | None: ...

    def app_hash(self, height: int) -> bytes | None: ...

    def committed_tx(self, tx_hash: bytes) -> CommittedTx | None: ...

    def tx_proof(self, tx_hash: bytes) -> TxProof | None: ...

    def result_proof(self, tx_hash: bytes) -> Any:
        """protocol.proof.ResultProof for a committed tx once a later sealed header attests
        its block's results (pipeline_depth heights on); None before that or if unknown."""
        ...

    def query(self, path: str, params: Mapping[str, str]) -> Any:
        """Returns services.interface.QueryResult; raises services.interface.QueryError."""
        ...

    # --- events ---
    def event_bus(self) -> Any:
        """The node's node.events.EventBus."""
        ...
