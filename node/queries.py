"""The read side of the NodeApi: blocks, txs, results and proofs straight from the store.

Everything here reads committed, durable data only, so an answer never mentions a block a
crash could take back.
"""

from __future__ import annotations

from node.api import CommittedTx, TxProof
from protocol import merkle
from protocol.block import decode_block
from protocol.proof import ResultProof, make_result_proof
from protocol.results import TxResult, decode_results
from protocol.seal import decode_seal
from protocol.sealed import SealedBlock
from storage.interface import ChainStore


class ChainReader:
    """Decoding reads over a ChainStore. Decoding what we wrote ourselves cannot fail
    unless the disk lies, and then the store's checksums raise CorruptionError first."""

    def __init__(self, store: ChainStore) -> None:
        self._store = store

    def latest_height(self) -> int:
        return self._store.committed_height()

    def sealed_block(self, height: int) -> SealedBlock | None:
        raw_block = self._store.block(height)
        raw_seal = self._store.seal(height)
        if raw_block is None or raw_seal is None:
            return None
        return SealedBlock(block=decode_block(raw_block), seal=decode_seal(raw_seal))

    def block_results(self, height: int) -> tuple[TxResult, ...] | None:
        raw = self._store.results(height)
        return None if raw is None else decode_results(raw)

    def committed_tx(self, tx_hash: bytes) -> CommittedTx | None:
        location = self._store.tx_location(tx_hash)
        if location is None:
            return None
        height, index = location
        sealed = self.sealed_block(height)
        results = self.block_results(height)
        assert sealed is not None, f"tx index points at missing block {height}"
        assert results is not None
        return CommittedTx(
            tx_hash=tx_hash,
            height=height,
            index=index,
            tx=sealed.block.txs[index],
            result=results[index],
        )

    def tx_proof(self, tx_hash: bytes) -> TxProof | None:
        location = self._store.tx_location(tx_hash)
        if location is None:
            return None
        height, index = location
        sealed = self.sealed_block(height)
        assert sealed is not None
        proof = merkle.prove(sealed.block.tx_hashes(), index)
        return TxProof(
            tx=sealed.block.txs[index],
            height=height,
            index=index,
            merkle_proof=proof,
            header=sealed.block.header,
            seal=sealed.seal,
        )

    def result_proof(self, tx_hash: bytes, *, pipeline_depth: int) -> ResultProof | None:
        location = self._store.tx_location(tx_hash)
        if location is None:
            return None
        height, index = location
        attesting = self.sealed_block(height + pipeline_depth)
        if attesting is None:
            return None  # not attested yet: the producer cuts proof blocks soon
        sealed = self.sealed_block(height)
        results = self.block_results(height)
        assert sealed is not None
        assert results is not None
        return make_result_proof(sealed=sealed, results=results, index=index, attesting=attesting)
