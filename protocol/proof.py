"""Offline proofs: that a tx was committed, and what its execution result was.

This is the small thing an auditor or a citizen runs with nothing but the genesis file
(chain id and validator keys): no node, no database, no network.

A TxProof carries the tx bytes, the Merkle path from its hash to the header's txs_root,
the header bytes and the seal over the header's hash. A ResultProof carries the TxProof of
a tx, its encoded TxResult, the Merkle path from the result's hash to `exec_results_root`,
and the header (with its seal) of the block that attests it: execution lags consensus by
`pipeline_depth`, so the results of block h are attested by the header whose exec_height
is h, which is the header at height h + pipeline_depth (protocol/block.py).

Layout (docs/PROTOCOL.md §Proofs):
    tx proof:     u8 version=1 | u8 type=1 | u64 height | u32 index | bytes32 tx
                  | bytes32 merkle proof | bytes32 header | bytes32 seal
    result proof: u8 version=1 | u8 type=2 | bytes32 tx proof (the whole encoding above)
                  | bytes32 result | bytes32 merkle proof | bytes32 header | bytes32 seal

What a seal proves depends on its kind. A quorum seal (kind 1) proves that a BFT quorum of
the validators signed the block. A leader seal (kind 2, Raft) proves only which single
validator vouched for it: Raft tolerates crashes, not lies. The verifier therefore refuses
leader seals unless the caller says the chain runs Raft (`accept_leader_seal=True`);
otherwise one dishonest validator of a PBFT chain could forge a "proof".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from protocol import limits
from protocol.block import HEADER_BYTES_MAX, BlockHeader, decode_header
from protocol.crypto import HASH_BYTES, sha256
from protocol.encoding import DecodeError, Reader, Writer
from protocol.merkle import MerkleProof, decode_proof, prove
from protocol.results import RESULT_BYTES_MAX, TxResult, decode_result
from protocol.seal import SEAL_BYTES_MAX, SEAL_LEADER, SEAL_QUORUM, Seal, decode_seal
from protocol.sealed import SealedBlock
from protocol.tx import Tx, chain_id_invalid, decode_tx
from protocol.validators import ValidatorSet

_T = TypeVar("_T")

PROOF_VERSION = 1
PROOF_TYPE_TX = 1
PROOF_TYPE_RESULT = 2
MERKLE_PROOF_BYTES_MAX = 4 + 4 + 1 + limits.merkle_proof_depth_max * HASH_BYTES
TX_PROOF_BYTES_MAX = (
    (1 + 1 + 8 + 4 + 4 * 4)
    + limits.tx_bytes_max
    + MERKLE_PROOF_BYTES_MAX
    + HEADER_BYTES_MAX
    + SEAL_BYTES_MAX
)
RESULT_PROOF_BYTES_MAX = (
    (1 + 1 + 5 * 4)
    + TX_PROOF_BYTES_MAX
    + RESULT_BYTES_MAX
    + MERKLE_PROOF_BYTES_MAX
    + HEADER_BYTES_MAX
    + SEAL_BYTES_MAX
)
PROOF_BYTES_MAX = RESULT_PROOF_BYTES_MAX


class ProofError(ValueError):
    """The proof does not prove what it claims. `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class TxProof:
    tx: bytes  # canonical tx bytes
    height: int
    index: int  # position of the tx in its block
    merkle_proof: MerkleProof  # tx hash -> header.txs_root
    header: bytes  # canonical header bytes of the block at `height`
    seal: bytes  # canonical seal bytes over that header's hash

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(PROOF_VERSION)
            .u8(PROOF_TYPE_TX)
            .u64(self.height)
            .u32(self.index)
            .bytes32(self.tx)
            .bytes32(self.merkle_proof.encode())
            .bytes32(self.header)
            .bytes32(self.seal)
            .finish()
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultProof:
    """The result of the tx that `tx_proof` proves. The tx proof is part of it because a
    Merkle path alone does not fix the tree size (RFC 9162 paths for leaf 2 of 3 and leaf
    1 of 2 are the same), so the result count must come from a sealed header: the tx
    block's tx_count. It also ties the result to the tx it belongs to."""

    tx_proof: TxProof
    result: bytes  # canonical bytes of one TxResult
    merkle_proof: MerkleProof  # result hash -> attesting header.exec_results_root
    header: bytes  # attesting header: exec_height == tx_proof.height
    seal: bytes  # seal over the attesting header's hash

    @property
    def height(self) -> int:
        return self.tx_proof.height

    @property
    def index(self) -> int:
        return self.tx_proof.index

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(PROOF_VERSION)
            .u8(PROOF_TYPE_RESULT)
            .bytes32(self.tx_proof.encode())
            .bytes32(self.result)
            .bytes32(self.merkle_proof.encode())
            .bytes32(self.header)
            .bytes32(self.seal)
            .finish()
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedTx:
    tx: Tx
    tx_hash: bytes
    height: int
    index: int
    header: BlockHeader
    block_hash: bytes
    seal_kind: int  # SEAL_QUORUM or SEAL_LEADER: how much the signers' word is worth
    signers: tuple[bytes, ...]  # public keys whose signatures on the block were checked


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedResult:
    tx: VerifiedTx
    result: TxResult
    attesting_header: BlockHeader
    attesting_block_hash: bytes
    seal_kind: int  # of the attesting seal
    signers: tuple[bytes, ...]  # of the attesting seal


def decode_any_proof(data: bytes) -> TxProof | ResultProof:
    """Strict decode of either proof type: every inner object must decode too."""
    if len(data) > PROOF_BYTES_MAX:
        raise DecodeError(f"proof is {len(data)} bytes, max {PROOF_BYTES_MAX}")
    reader = Reader(data)
    version = reader.u8("version")
    if version != PROOF_VERSION:
        raise DecodeError(f"unknown proof version {version}")
    kind = reader.u8("type")
    if kind == PROOF_TYPE_TX:
        proof: TxProof | ResultProof = _read_tx_proof_body(reader)
    elif kind == PROOF_TYPE_RESULT:
        proof = _read_result_proof_body(reader)
    else:
        raise DecodeError(f"unknown proof type {kind}")
    reader.finish("proof")
    return proof


def _read_tx_proof_body(reader: Reader) -> TxProof:
    height = reader.u64("height")
    index = reader.u32("index")
    tx = reader.bytes32("tx", max_bytes=limits.tx_bytes_max)
    decode_tx(tx)
    merkle_proof = decode_proof(reader.bytes32("merkle_proof", max_bytes=MERKLE_PROOF_BYTES_MAX))
    header, seal = _read_sealed_header(reader)
    return TxProof(
        tx=tx, height=height, index=index, merkle_proof=merkle_proof, header=header, seal=seal
    )


def _read_result_proof_body(reader: Reader) -> ResultProof:
    tx_proof = decode_tx_proof(reader.bytes32("tx_proof", max_bytes=TX_PROOF_BYTES_MAX))
    result = reader.bytes32("result", max_bytes=RESULT_BYTES_MAX)
    decode_one_result(result)
    merkle_proof = decode_proof(reader.bytes32("merkle_proof", max_bytes=MERKLE_PROOF_BYTES_MAX))
    header, seal = _read_sealed_header(reader)
    return ResultProof(
        tx_proof=tx_proof, result=result, merkle_proof=merkle_proof, header=header, seal=seal
    )


def _read_sealed_header(reader: Reader) -> tuple[bytes, bytes]:
    header = reader.bytes32("header", max_bytes=HEADER_BYTES_MAX)
    decode_header(header)
    seal = reader.bytes32("seal", max_bytes=SEAL_BYTES_MAX)
    decode_seal(seal)
    return header, seal


def decode_tx_proof(data: bytes) -> TxProof:
    proof = decode_any_proof(data)
    if not isinstance(proof, TxProof):
        raise DecodeError("expected a tx proof, got a result proof")
    return proof


def decode_result_proof(data: bytes) -> ResultProof:
    proof = decode_any_proof(data)
    if not isinstance(proof, ResultProof):
        raise DecodeError("expected a result proof, got a tx proof")
    return proof


def decode_one_result(data: bytes) -> TxResult:
    """One encoded TxResult on its own (decode_results reads a counted list)."""
    reader = Reader(data)
    result = decode_result(reader)
    reader.finish("result")
    return result


# --- building proofs (node side) -----------------------------------------------------


def make_tx_proof(sealed: SealedBlock, index: int) -> TxProof:
    """The proof for the tx at `index` of a committed block."""
    block = sealed.block
    assert 0 <= index < len(block.txs), f"no tx {index} in a block of {len(block.txs)}"
    return TxProof(
        tx=block.encoded_txs()[index],
        height=block.height,
        index=index,
        merkle_proof=prove(block.tx_hashes(), index),
        header=block.header.encode(),
        seal=sealed.seal.encode(),
    )


def make_result_proof(
    *, sealed: SealedBlock, results: tuple[TxResult, ...], index: int, attesting: SealedBlock
) -> ResultProof:
    """The proof for the result of tx `index` of the committed block `sealed`, whose
    execution produced `results`; `attesting` is the committed block whose header has
    exec_height == sealed.height (the block at height + pipeline_depth)."""
    assert len(results) == len(sealed.block.txs), "one result per tx"
    assert attesting.block.header.exec_height == sealed.height, "attests another height"
    return ResultProof(
        tx_proof=make_tx_proof(sealed, index),
        result=results[index].encode(),
        merkle_proof=prove([result.hash() for result in results], index),
        header=attesting.block.header.encode(),
        seal=attesting.seal.encode(),
    )


# --- verifying proofs (auditor side) -------------------------------------------------


def verify_tx_proof(
    proof: TxProof,
    validators: ValidatorSet,
    chain_id: str,
    *,
    accept_leader_seal: bool = False,
) -> VerifiedTx:
    """The tx this proof proves committed, or ProofError(reason). Checks, in order: the
    tx decodes, is for this chain and is signed by its signer; the header is the one at
    `height` on this chain and lists these validators; the Merkle path leads from the tx
    hash to the header's txs_root at `index`; the seal covers the header's hash and every
    one of its signatures is valid (quorum or, if accepted, leader)."""
    _check_chain_id(chain_id)
    tx = _decoded(decode_tx, proof.tx, "tx")
    if tx.chain_id != chain_id:
        raise ProofError(f"tx is for chain {tx.chain_id!r}, not {chain_id!r}")
    if not tx.verify_signature():
        raise ProofError("tx signature is invalid")
    header, block_hash, seal = _verify_sealed_header(
        proof.header, proof.seal, validators, chain_id, accept_leader_seal=accept_leader_seal
    )
    if header.height != proof.height:
        raise ProofError(f"header is for height {header.height}, proof claims {proof.height}")
    tx_hash = sha256(proof.tx)
    _check_path(proof.merkle_proof, proof.index, header.tx_count, tx_hash, header.txs_root)
    return VerifiedTx(
        tx=tx,
        tx_hash=tx_hash,
        height=header.height,
        index=proof.index,
        header=header,
        block_hash=block_hash,
        seal_kind=seal.kind,
        signers=tuple(validators.public_keys[i] for i, _ in seal.signatures),
    )


def verify_result_proof(
    proof: ResultProof,
    validators: ValidatorSet,
    chain_id: str,
    *,
    accept_leader_seal: bool = False,
    pipeline_depth: int | None = None,
) -> VerifiedResult:
    """The tx and its result that this proof proves, or ProofError(reason). First the
    embedded tx proof; then the attesting header must be sealed, say it executed the tx's
    height (and, when `pipeline_depth` is given, sit exactly that far above it); and the
    Merkle path must lead from the result hash, at the tx's index among tx_count results,
    to its exec_results_root."""
    verified_tx = verify_tx_proof(
        proof.tx_proof, validators, chain_id, accept_leader_seal=accept_leader_seal
    )
    result = _decoded(decode_one_result, proof.result, "result")
    header, block_hash, seal = _verify_sealed_header(
        proof.header, proof.seal, validators, chain_id, accept_leader_seal=accept_leader_seal
    )
    if header.exec_height != verified_tx.height:
        raise ProofError(
            f"attesting header executes height {header.exec_height}, tx is at {verified_tx.height}"
        )
    if pipeline_depth is not None and header.height != verified_tx.height + pipeline_depth:
        raise ProofError(
            f"attesting header is at {header.height}, want {verified_tx.height} + {pipeline_depth}"
        )
    _check_path(
        proof.merkle_proof,
        verified_tx.index,
        verified_tx.header.tx_count,
        sha256(proof.result),
        header.exec_results_root,
    )
    return VerifiedResult(
        tx=verified_tx,
        result=result,
        attesting_header=header,
        attesting_block_hash=block_hash,
        seal_kind=seal.kind,
        signers=tuple(validators.public_keys[i] for i, _ in seal.signatures),
    )


def verify_proof(
    proof: TxProof | ResultProof,
    validators: ValidatorSet,
    chain_id: str,
    *,
    accept_leader_seal: bool = False,
    pipeline_depth: int | None = None,
) -> VerifiedTx | VerifiedResult:
    """Either verifier, chosen by the proof's type (what the CLI's `verify` calls)."""
    if isinstance(proof, TxProof):
        return verify_tx_proof(proof, validators, chain_id, accept_leader_seal=accept_leader_seal)
    return verify_result_proof(
        proof,
        validators,
        chain_id,
        accept_leader_seal=accept_leader_seal,
        pipeline_depth=pipeline_depth,
    )


def _verify_sealed_header(
    header_bytes: bytes,
    seal_bytes: bytes,
    validators: ValidatorSet,
    chain_id: str,
    *,
    accept_leader_seal: bool,
) -> tuple[BlockHeader, bytes, Seal]:
    _check_chain_id(chain_id)
    header = _decoded(decode_header, header_bytes, "header")
    if header.chain_id != chain_id:
        raise ProofError(f"header is for chain {header.chain_id!r}, not {chain_id!r}")
    if header.validators_hash != validators.hash():
        raise ProofError("header names another validator set")
    seal = _decoded(decode_seal, seal_bytes, "seal")
    if seal.kind == SEAL_LEADER and not accept_leader_seal:
        raise ProofError("leader seal (one validator's word) where a quorum seal is required")
    assert seal.kind in (SEAL_QUORUM, SEAL_LEADER)  # decode_seal accepts no other kind
    block_hash = sha256(header_bytes)
    reason = seal.invalid_for(
        validators, chain_id=chain_id, height=header.height, block_hash=block_hash
    )
    if reason is not None:
        raise ProofError(f"seal: {reason}")
    return header, block_hash, seal


def _check_chain_id(chain_id: str) -> None:
    if (reason := chain_id_invalid(chain_id)) is not None:
        raise ProofError(f"bad chain id to verify against: {reason}")


def _check_path(
    merkle_proof: MerkleProof, index: int, total: int, item: bytes, expected_root: bytes
) -> None:
    if merkle_proof.index != index:
        raise ProofError(f"Merkle proof is for index {merkle_proof.index}, not {index}")
    if merkle_proof.total != total:
        raise ProofError(f"Merkle proof is for {merkle_proof.total} leaves, block has {total}")
    if not merkle_proof.verify(item, expected_root):
        raise ProofError("Merkle path does not lead to the header's root")


def _decoded(decode: Callable[[bytes], _T], data: bytes, what: str) -> _T:
    try:
        return decode(data)
    except DecodeError as error:
        raise ProofError(f"{what} does not decode: {error}") from None
