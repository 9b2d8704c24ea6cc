"""JSON shapes of protocol objects in RPC responses (docs/RPC.md §Shapes).

Conventions: hashes, keys and signatures are lowercase hex; txs and opaque result data are
base64 of their canonical bytes; integers are JSON numbers (unlike CometBFT's quoted int64s:
every height and count here fits in 2^53). Objects that someone may want to verify offline
(header, seal, proof) also carry `hex`, their canonical bytes, so a verifier never has to
re-encode JSON.
"""

from __future__ import annotations

import base64
from typing import Any

from node.api import CommittedTx, SubmitResult, TxProof
from protocol.block import Block, BlockHeader
from protocol.proof import TxProof as ProtocolTxProof
from protocol.proof_json import proof_to_json
from protocol.results import TxResult
from protocol.seal import SEAL_LEADER, SEAL_QUORUM, Seal
from protocol.sealed import SealedBlock
from protocol.tx import Tx

_SEAL_KIND_NAMES = {SEAL_QUORUM: "quorum", SEAL_LEADER: "leader"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def header_json(header: BlockHeader) -> dict[str, Any]:
    return {
        "chain_id": header.chain_id,
        "height": header.height,
        "prev_hash": header.prev_hash.hex(),
        "time_ms": header.time_ms,
        "proposer": header.proposer.hex(),
        "tx_count": header.tx_count,
        "txs_root": header.txs_root.hex(),
        "validators_hash": header.validators_hash.hex(),
        "exec_height": header.exec_height,
        "exec_app_hash": header.exec_app_hash.hex(),
        "exec_results_root": header.exec_results_root.hex(),
        "hash": header.hash().hex(),
        "hex": header.encode().hex(),
    }


def seal_json(seal: Seal) -> dict[str, Any]:
    return {
        "kind": _SEAL_KIND_NAMES.get(seal.kind, str(seal.kind)),
        "round": seal.round,
        "height": seal.height,
        "block_hash": seal.block_hash.hex(),
        "signatures": [
            {"validator_index": index, "signature": signature.hex()}
            for index, signature in seal.signatures
        ],
        "hex": seal.encode().hex(),
    }


def block_json(sealed: SealedBlock) -> dict[str, Any]:
    """CometBFT's /block shape: block_id, block {header, data {txs}}, plus our seal."""
    block = sealed.block
    return {
        "block_id": {"hash": block.hash().hex()},
        "block": {
            "header": header_json(block.header),
            "data": {"txs": [b64(raw) for raw in block.encoded_txs()]},
        },
        "seal": seal_json(sealed.seal),
    }


def block_meta_json(block: Block) -> dict[str, Any]:
    return {
        "block_id": {"hash": block.hash().hex()},
        "block_size": sum(len(raw) for raw in block.encoded_txs()),
        "header": header_json(block.header),
        "num_txs": block.header.tx_count,
    }


def tx_result_json(result: TxResult) -> dict[str, Any]:
    return {"code": result.code, "log": result.log, "data": b64(result.data)}


def submit_json(result: SubmitResult) -> dict[str, Any]:
    """CometBFT's broadcast_tx_sync result."""
    return {
        "code": result.code,
        "data": "",
        "log": result.log,
        "codespace": result.codespace,
        "hash": result.tx_hash.hex(),
    }


def tx_summary_json(tx: Tx) -> dict[str, Any]:
    return {
        "chain_id": tx.chain_id,
        "signer": tx.signer.hex(),
        "nonce": tx.nonce,
        "expiry_height": tx.expiry_height,
        "kind": tx.kind,
    }


def committed_tx_json(committed: CommittedTx) -> dict[str, Any]:
    """CometBFT's /tx shape (hash, height, index, tx_result, tx) plus the decoded header
    fields of the tx under `decoded` (never the body: that is the service's business)."""
    return {
        "hash": committed.tx_hash.hex(),
        "height": committed.height,
        "index": committed.index,
        "tx_result": tx_result_json(committed.result),
        "tx": b64(committed.tx.encode()),
        "decoded": tx_summary_json(committed.tx),
    }


def tx_proof_json(proof: TxProof) -> dict[str, Any]:
    """The proof in protocol/proof_json.py's form: exactly what `seoulchain verify` reads,
    checkable with only the genesis file (tx bytes, Merkle path to header.txs_root, header
    bytes, seal bytes)."""
    return proof_to_json(
        ProtocolTxProof(
            tx=proof.tx.encode(),
            height=proof.height,
            index=proof.index,
            merkle_proof=proof.merkle_proof,
            header=proof.header.encode(),
            seal=proof.seal.encode(),
        )
    )
