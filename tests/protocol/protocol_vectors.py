"""Deterministic generator of the protocol test vectors (tests/protocol/vectors.json, and
inline in docs/PROTOCOL.md §Test vectors). Keys come from SigningKey.from_secret(b"vector-N"),
whose seed is SHA-256(b"seoulchain/test-key\\n" || b"vector-N"); Ed25519 is deterministic,
so every byte below is a function of this code alone.

Regenerate after a deliberate protocol change with
    SEOULCHAIN_REWRITE_VECTORS=1 .venv/bin/python -m pytest tests/protocol/test_protocol_vectors.py
and review the diff: a changed vector means every client in every language must change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocol.block import Block, make_block
from protocol.crypto import DOMAIN_COMMIT_VOTE, DOMAIN_RAFT_SEAL, DOMAIN_TX, ZERO_HASH, SigningKey
from protocol.merkle import prove
from protocol.proof import make_tx_proof
from protocol.proof_json import proof_to_json
from protocol.results import TxResult, encode_results, results_root
from protocol.seal import (
    SEAL_LEADER,
    SEAL_QUORUM,
    Seal,
    commit_vote_payload,
    sign_commit_vote,
    sign_leader_seal,
)
from protocol.sealed import SealedBlock
from protocol.tx import sign_tx
from protocol.validators import DOMAIN_VALIDATORS, ValidatorSet

VECTORS_PATH = Path(__file__).with_name("vectors.json")
CHAIN_ID = "seoul-vectors"


def _key(number: int) -> SigningKey:
    return SigningKey.from_secret(f"vector-{number}".encode())


def _keys_section(citizen: SigningKey, validators: list[SigningKey]) -> dict[str, Any]:
    def entry(secret: str, key: SigningKey) -> dict[str, str]:
        return {"secret": secret, "seed": key.seed.hex(), "public_key": key.public_key.hex()}

    return {
        "citizen": entry("vector-0", citizen),
        "validators": [entry(f"vector-{i + 1}", key) for i, key in enumerate(validators)],
    }


def _vector_block(citizen: SigningKey, validators: ValidatorSet) -> Block:
    txs = tuple(
        sign_tx(
            citizen,
            chain_id=CHAIN_ID,
            nonce=nonce,
            expiry_height=100,
            kind="notary.anchor",
            body=bytes.fromhex("a1") + f"doc-{nonce}".encode(),
        )
        for nonce in (1, 2, 3)
    )
    return make_block(
        chain_id=CHAIN_ID,
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=1_767_225_600_000,
        proposer=validators.public_keys[0],
        txs=txs,
        validators_hash=validators.hash(),
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )


def _vector_seals(keys: list[SigningKey], block_hash: bytes) -> tuple[Seal, Seal]:
    """A quorum seal by validators 0, 1, 2 in view 0; a leader seal by 1 in term 7."""
    signatures = tuple(
        (
            index,
            sign_commit_vote(
                keys[index], chain_id=CHAIN_ID, view=0, height=1, block_hash=block_hash
            ),
        )
        for index in (0, 1, 2)
    )
    seal = Seal(kind=SEAL_QUORUM, round=0, height=1, block_hash=block_hash, signatures=signatures)
    leader_signature = sign_leader_seal(
        keys[1], chain_id=CHAIN_ID, term=7, height=1, block_hash=block_hash
    )
    leader = Seal(
        kind=SEAL_LEADER,
        round=7,
        height=1,
        block_hash=block_hash,
        signatures=((1, leader_signature),),
    )
    return seal, leader


def generate_vectors() -> dict[str, Any]:
    citizen = _key(0)
    validator_keys = [_key(i) for i in range(1, 5)]
    validators = ValidatorSet(tuple(key.public_key for key in validator_keys))
    block = _vector_block(citizen, validators)
    tx = block.txs[0]
    block_hash = block.hash()
    vote_payload = commit_vote_payload(chain_id=CHAIN_ID, view=0, height=1, block_hash=block_hash)
    seal, leader = _vector_seals(validator_keys, block_hash)
    signatures = seal.signatures
    tx_hashes = block.tx_hashes()
    merkle_proof = prove(tx_hashes, 1)
    tx_proof = make_tx_proof(SealedBlock(block=block, seal=seal), 1)
    results = (
        TxResult(code=0, log="", data=b"\x01"),
        TxResult(code=7, log="duplicate document"),
        TxResult(code=0, log="ok", data=bytes.fromhex("00ff")),
    )
    assert seal.invalid_for(validators, chain_id=CHAIN_ID, height=1, block_hash=block_hash) is None
    return {
        "about": "Protocol test vectors (docs/PROTOCOL.md); binary values are lowercase hex.",
        "chain_id": CHAIN_ID,
        "keys": _keys_section(citizen, validator_keys),
        "domains": {
            "tx": DOMAIN_TX.hex(),
            "commit_vote": DOMAIN_COMMIT_VOTE.hex(),
            "raft_seal": DOMAIN_RAFT_SEAL.hex(),
            "validators": DOMAIN_VALIDATORS.hex(),
        },
        "tx": {
            "chain_id": tx.chain_id,
            "signer": tx.signer.hex(),
            "nonce": tx.nonce,
            "expiry_height": tx.expiry_height,
            "kind": tx.kind,
            "body": tx.body.hex(),
            "signing_payload": tx.signing_payload().hex(),
            "signature": tx.signature.hex(),
            "canonical": tx.encode().hex(),
            "hash": tx.hash().hex(),
        },
        "block": {
            "height": 1,
            "time_ms": block.header.time_ms,
            "tx_canonical": [raw.hex() for raw in block.encoded_txs()],
            "tx_hashes": [digest.hex() for digest in tx_hashes],
            "txs_root": block.header.txs_root.hex(),
            "header": block.header.encode().hex(),
            "hash": block_hash.hex(),
        },
        "merkle_proof": {
            "item": tx_hashes[1].hex(),
            "index": merkle_proof.index,
            "total": merkle_proof.total,
            "path": [sibling.hex() for sibling in merkle_proof.path],
            "encoding": merkle_proof.encode().hex(),
            "root": block.header.txs_root.hex(),
        },
        "commit_vote": {
            "validator_index": 0,
            "view": 0,
            "height": 1,
            "block_hash": block_hash.hex(),
            "payload": vote_payload.hex(),
            "signature": signatures[0][1].hex(),
        },
        "validators": {
            "public_keys": [key.hex() for key in validators.public_keys],
            "hash": validators.hash().hex(),
            "quorum": validators.quorum,
        },
        "seal": {"signers": [0, 1, 2], "encoding": seal.encode().hex()},
        "leader_seal": {"term": 7, "leader_index": 1, "encoding": leader.encode().hex()},
        "results": {
            "encoding": encode_results(results).hex(),
            "result_hashes": [result.hash().hex() for result in results],
            "results_root": results_root(results).hex(),
        },
        "tx_proof": {"encoding": tx_proof.encode().hex(), "json": proof_to_json(tx_proof)},
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, sort_keys=False) + "\n"
