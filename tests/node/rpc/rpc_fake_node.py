"""An in-memory NodeApi for RPC tests: a real chain of real protocol objects (signed txs,
blocks with Merkle roots, seals with real commit-vote signatures by 4 validators), a bounded
mempool, and an EventBus. Blocks are cut when a test calls `commit_pending()`, so tests
decide exactly when things commit. The RPC server is the part under test; this is the
smallest honest node behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from node.api import CommittedTx, NodeEvent, SubmitResult, TxProof
from node.events import EventBus
from protocol import merkle
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH, SigningKey, sha256
from protocol.encoding import DecodeError
from protocol.results import TxResult, results_root
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote
from protocol.sealed import SealedBlock
from protocol.tx import Tx, decode_tx, sign_tx
from protocol.validators import ValidatorSet
from services.interface import QueryError, QueryResult

CHAIN_ID = "test-chain"
FAILING_KIND = "test.fail"  # txs of this kind execute with code 7
VALIDATOR_KEYS = tuple(SigningKey.from_secret(f"validator-{i}".encode()) for i in range(4))
VALIDATORS = ValidatorSet(tuple(key.public_key for key in VALIDATOR_KEYS))
CLIENT_KEY = SigningKey.from_secret(b"client")


def make_tx(nonce: int, *, kind: str = "notary.anchor", body: bytes = b"doc") -> Tx:
    return sign_tx(
        CLIENT_KEY, chain_id=CHAIN_ID, nonce=nonce, expiry_height=1_000_000, kind=kind, body=body
    )


class FakeNode:
    def __init__(self, *, mempool_max: int = 1_000, bus: EventBus | None = None) -> None:
        self.bus = bus or EventBus()
        self.mempool: dict[bytes, Tx] = {}
        self.mempool_max = mempool_max
        self.blocks: list[SealedBlock] = []
        self.results: list[tuple[TxResult, ...]] = []
        self.committed: dict[bytes, CommittedTx] = {}
        self.unhealthy: str | None = None
        self.submitted: list[bytes] = []  # every raw tx offered, in order
        self.submit_delay_s = 0.0  # a slow mempool, for backpressure tests
        self._waiters: dict[bytes, list[asyncio.Future[CommittedTx]]] = {}

    # --- info ---
    def status(self) -> dict[str, Any]:
        return {
            "node_info": {"chain_id": CHAIN_ID},
            "sync_info": {"latest_height": len(self.blocks)},
        }

    def genesis(self) -> dict[str, Any]:
        return {
            "chain_id": CHAIN_ID,
            "validators": [key.public_key.hex() for key in VALIDATOR_KEYS],
        }

    def validators(self) -> list[dict[str, Any]]:
        return [{"index": i, "public_key": k.hex()} for i, k in enumerate(VALIDATORS.public_keys)]

    def net_info(self) -> dict[str, Any]:
        return {"listening": True, "n_peers": 3, "peers": []}

    def health(self) -> dict[str, Any]:
        if self.unhealthy is not None:
            raise RuntimeError(self.unhealthy)
        return {}

    # --- transactions ---
    async def submit_tx(self, raw: bytes) -> SubmitResult:
        self.submitted.append(raw)
        if self.submit_delay_s:
            await asyncio.sleep(self.submit_delay_s)
        tx_hash = sha256(raw)
        try:
            tx = decode_tx(raw)
        except DecodeError as error:
            return SubmitResult(tx_hash=tx_hash, code=2, log=str(error), codespace="mempool")
        if not tx.verify_signature():
            return SubmitResult(tx_hash=tx_hash, code=3, log="bad signature", codespace="mempool")
        if tx_hash in self.mempool or tx_hash in self.committed:
            return SubmitResult(tx_hash=tx_hash, code=0, log="already known")
        if len(self.mempool) >= self.mempool_max:
            return SubmitResult(tx_hash=tx_hash, code=1, log="mempool full", codespace="mempool")
        self.mempool[tx_hash] = tx
        return SubmitResult(tx_hash=tx_hash, code=0)

    async def submit_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        return [await self.submit_tx(raw) for raw in raws]

    async def wait_for_commit(self, tx_hash: bytes, *, timeout_s: float) -> CommittedTx | None:
        if tx_hash in self.committed:
            return self.committed[tx_hash]
        future: asyncio.Future[CommittedTx] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(tx_hash, [])
            if future in waiters:
                waiters.remove(future)

    def num_unconfirmed_txs(self) -> tuple[int, int]:
        return len(self.mempool), sum(len(tx.encode()) for tx in self.mempool.values())

    def unconfirmed_txs(self, limit: int) -> list[Tx]:
        return list(self.mempool.values())[:limit]

    # --- blocks and txs ---
    def latest_height(self) -> int:
        return len(self.blocks)

    def sealed_block(self, height: int) -> SealedBlock | None:
        return self.blocks[height - 1] if 1 <= height <= len(self.blocks) else None

    def block_height_of(self, block_hash: bytes) -> int | None:
        for sealed in self.blocks:
            if sealed.block.hash() == block_hash:
                return sealed.height
        return None

    def block_results(self, height: int) -> tuple[TxResult, ...] | None:
        return self.results[height - 1] if 1 <= height <= len(self.results) else None

    def app_hash(self, height: int) -> bytes | None:
        return (
            sha256(b"app" + height.to_bytes(8, "big")) if 1 <= height <= len(self.blocks) else None
        )

    def committed_tx(self, tx_hash: bytes) -> CommittedTx | None:
        return self.committed.get(tx_hash)

    def tx_proof(self, tx_hash: bytes) -> TxProof | None:
        committed = self.committed.get(tx_hash)
        if committed is None:
            return None
        sealed = self.blocks[committed.height - 1]
        proof = merkle.prove(sealed.block.tx_hashes(), committed.index)
        return TxProof(
            tx=committed.tx,
            height=committed.height,
            index=committed.index,
            merkle_proof=proof,
            header=sealed.block.header,
            seal=sealed.seal,
        )

    def result_proof(self, tx_hash: bytes) -> None:
        """This fake chain does not model the execution lag (its headers attest nothing),
        so no result is ever provable here; tests/node/test_node_solo.py covers the real
        node's result proofs."""
        return None

    def query(self, path: str, params: Mapping[str, str]) -> Any:
        if path == "echo":
            return QueryResult(found=True, value=dict(params), height=len(self.blocks))
        if path == "boom":
            raise RuntimeError("secret internal detail /etc/passwd")
        raise QueryError(f"unknown path {path!r}")

    def event_bus(self) -> EventBus:
        return self.bus

    # --- test controls ---
    def commit_pending(self, *, time_ms: int = 1_000) -> SealedBlock:
        """Cut a block from the whole mempool, seal it with 3 of 4 votes, execute, publish."""
        txs = tuple(self.mempool.values())
        self.mempool.clear()
        block = self._make_block(txs, time_ms=time_ms)
        sealed = SealedBlock(block=block, seal=self._seal(block))
        assert sealed.invalid_for(VALIDATORS) is None
        results = tuple(
            TxResult(code=7 if tx.kind == FAILING_KIND else 0, log="ok", data=b"r") for tx in txs
        )
        self.blocks.append(sealed)
        self.results.append(results)
        for index, (tx, tx_hash, result) in enumerate(zip(txs, block.tx_hashes(), results)):
            committed = CommittedTx(
                tx_hash=tx_hash, height=block.height, index=index, tx=tx, result=result
            )
            self.committed[tx_hash] = committed
            for future in self._waiters.pop(tx_hash, []):
                if not future.done():
                    future.set_result(committed)
        self._publish(sealed, results)
        return sealed

    def _make_block(self, txs: tuple[Tx, ...], *, time_ms: int) -> Block:
        height = len(self.blocks) + 1
        prev_hash = self.blocks[-1].block.hash() if self.blocks else ZERO_HASH
        return make_block(
            chain_id=CHAIN_ID,
            height=height,
            prev_hash=prev_hash,
            time_ms=time_ms,
            proposer=VALIDATOR_KEYS[0].public_key,
            txs=txs,
            validators_hash=VALIDATORS.hash(),
            exec_height=height - 1,
            exec_app_hash=ZERO_HASH,
            exec_results_root=results_root([]),
        )

    @staticmethod
    def _seal(block: Block) -> Seal:
        signatures = tuple(
            (
                index,
                sign_commit_vote(
                    key, chain_id=CHAIN_ID, view=0, height=block.height, block_hash=block.hash()
                ),
            )
            for index, key in enumerate(VALIDATOR_KEYS[:3])
        )
        return Seal(
            kind=SEAL_QUORUM,
            round=0,
            height=block.height,
            block_hash=block.hash(),
            signatures=signatures,
        )

    def _publish(self, sealed: SealedBlock, results: tuple[TxResult, ...]) -> None:
        block = sealed.block
        self.bus.publish(
            NodeEvent(
                kind="NewBlock",
                height=block.height,
                data={"hash": block.hash().hex(), "num_txs": len(block.txs)},
            )
        )
        for index, (tx, tx_hash) in enumerate(zip(block.txs, block.tx_hashes())):
            self.bus.publish(
                NodeEvent(
                    kind="Tx",
                    height=block.height,
                    data={"hash": tx_hash.hex(), "index": index, "code": results[index].code},
                    attributes={"tx.kind": tx.kind, "notary.issuer": "seoul-city"},
                )
            )
