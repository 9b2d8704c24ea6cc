"""Deterministic sample objects for the protocol tests: keys, txs, blocks, seals, and a
small chain with pipelined execution results, all built with the real signing code."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.results import TxResult, results_root
from protocol.seal import SEAL_LEADER, SEAL_QUORUM, Seal, sign_commit_vote, sign_leader_seal
from protocol.sealed import SealedBlock
from protocol.tx import Tx, sign_tx
from protocol.validators import ValidatorSet

CHAIN_ID = "seoul-test"
PIPELINE_DEPTH = 2


def validator_keys(count: int) -> list[SigningKey]:
    return [SigningKey.from_secret(f"validator-{i}".encode()) for i in range(count)]


def validator_set(keys: list[SigningKey]) -> ValidatorSet:
    return ValidatorSet(tuple(key.public_key for key in keys))


def sample_tx(nonce: int = 1, *, chain_id: str = CHAIN_ID, body: bytes = b"body") -> Tx:
    key = SigningKey.from_secret(b"citizen")
    return sign_tx(
        key, chain_id=chain_id, nonce=nonce, expiry_height=1000, kind="notary.anchor", body=body
    )


def sample_block(
    height: int,
    txs: tuple[Tx, ...],
    *,
    validators: ValidatorSet,
    prev_hash: bytes = ZERO_HASH,
    exec_height: int = 0,
    exec_results_root: bytes = ZERO_HASH,
) -> Block:
    return make_block(
        chain_id=CHAIN_ID,
        height=height,
        prev_hash=prev_hash if height > 1 else ZERO_HASH,
        time_ms=1_700_000_000_000 + height,
        proposer=validators.public_keys[0],
        txs=txs,
        validators_hash=validators.hash(),
        exec_height=exec_height,
        exec_app_hash=bytes([height % 256]) * 32 if exec_height else ZERO_HASH,
        exec_results_root=exec_results_root,
    )


def quorum_seal(
    block: Block, keys: list[SigningKey], signer_indices: list[int], *, view: int = 0
) -> Seal:
    block_hash = block.hash()
    signatures = tuple(
        (
            index,
            sign_commit_vote(
                keys[index],
                chain_id=CHAIN_ID,
                view=view,
                height=block.height,
                block_hash=block_hash,
            ),
        )
        for index in signer_indices
    )
    return Seal(
        kind=SEAL_QUORUM,
        round=view,
        height=block.height,
        block_hash=block_hash,
        signatures=signatures,
    )


def leader_seal(block: Block, keys: list[SigningKey], leader: int, *, term: int = 3) -> Seal:
    block_hash = block.hash()
    signature = sign_leader_seal(
        keys[leader], chain_id=CHAIN_ID, term=term, height=block.height, block_hash=block_hash
    )
    return Seal(
        kind=SEAL_LEADER,
        round=term,
        height=block.height,
        block_hash=block_hash,
        signatures=((leader, signature),),
    )


def sample_results(count: int, height: int) -> tuple[TxResult, ...]:
    return tuple(
        TxResult(code=i % 3, log=f"tx {i} at {height}", data=bytes([i]) * i) for i in range(count)
    )


@dataclass(frozen=True)
class SampleChain:
    keys: list[SigningKey]
    validators: ValidatorSet
    blocks: list[SealedBlock]  # blocks[i] is height i + 1
    results: list[tuple[TxResult, ...]]  # results[i] belong to height i + 1

    def at(self, height: int) -> SealedBlock:
        return self.blocks[height - 1]


def sample_chain(
    heights: int = 4, txs_per_block: int = 3, *, validator_count: int = 4, leader: bool = False
) -> SampleChain:
    """A chain whose header at h attests the results of h - PIPELINE_DEPTH, sealed by all
    validators (or by validator 1 alone as a Raft leader)."""
    keys = validator_keys(validator_count)
    validators = validator_set(keys)
    blocks: list[SealedBlock] = []
    results: list[tuple[TxResult, ...]] = []
    prev_hash = ZERO_HASH
    for height in range(1, heights + 1):
        txs = tuple(sample_tx(height * 100 + i) for i in range(txs_per_block))
        exec_height = max(0, height - PIPELINE_DEPTH)
        root = results_root(results[exec_height - 1]) if exec_height else ZERO_HASH
        block = sample_block(
            height,
            txs,
            validators=validators,
            prev_hash=prev_hash,
            exec_height=exec_height,
            exec_results_root=root,
        )
        if leader:
            seal = leader_seal(block, keys, 1)
        else:
            seal = quorum_seal(block, keys, list(range(validator_count)))
        blocks.append(SealedBlock(block=block, seal=seal))
        results.append(sample_results(txs_per_block, height))
        prev_hash = block.hash()
    return SampleChain(keys=keys, validators=validators, blocks=blocks, results=results)
