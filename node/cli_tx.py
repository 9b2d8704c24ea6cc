"""CLI commands that talk to a node or check its proofs: notary txs, tx lookup, verify.

CLI txs use a random 64-bit nonce (os.urandom): replay protection is by (signer, nonce), so
two CLI invocations never collide in practice (2^-64) and no nonce state is kept on disk.
They expire `limits.cli_expiry_heights` (1000) heights after the latest committed height.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from node import limits
from node.cli_common import CliError
from node.cli_rpc import call_sync
from node.genesis import load_genesis
from protocol.crypto import HASH_BYTES, SigningKey, parse_hex
from protocol.encoding import DecodeError
from protocol.merkle import decode_proof
from protocol.proof import (
    ProofError,
    ResultProof,
    TxProof,
    VerifiedResult,
    VerifiedTx,
    verify_proof,
)
from protocol.proof_json import proof_from_json, proof_to_json
from protocol.seal import SEAL_QUORUM
from protocol.tx import sign_tx

log = logging.getLogger(__name__)

PROOF_FILE_BYTES_MAX = 4 * 1024 * 1024
_READ_CHUNK_BYTES = 1024 * 1024


def document_hash(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks (documents may be large; memory stays bounded)."""
    digest = hashlib.sha256()
    total = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_READ_CHUNK_BYTES):
                total += len(chunk)
                if total > limits.cli_document_bytes_max:
                    raise CliError(f"{path}: larger than {limits.cli_document_bytes_max} bytes")
                digest.update(chunk)
    except OSError as error:
        raise CliError(f"{path}: cannot read: {error.strerror}") from None
    return digest.digest()


def hash_argument(text: str, *, option: str = "--hash") -> bytes:
    try:
        return parse_hex(text.removeprefix("0x"), size=HASH_BYTES, field=option)
    except ValueError as error:
        raise CliError(str(error), exit_code=2) from None


def parse_meta(pairs: list[str]) -> dict[str, str]:
    if len(pairs) > limits.cli_meta_pairs_max:
        raise CliError(f"at most {limits.cli_meta_pairs_max} --meta pairs", exit_code=2)
    meta: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise CliError(f"--meta {pair!r}: expected key=value", exit_code=2)
        if key in meta:
            raise CliError(f"--meta {key!r} given twice", exit_code=2)
        meta[key] = value
    return meta


def chain_context(url: str) -> tuple[str, int]:
    """(chain id, latest height) of the node at `url`."""
    genesis = call_sync(url, "genesis").get("genesis", {})
    chain_id = genesis.get("chain_id") if isinstance(genesis, dict) else None
    if not isinstance(chain_id, str):
        raise CliError(f"{url}: genesis answer has no chain_id")
    height = call_sync(url, "validators").get("block_height")
    if isinstance(height, str) and height.isdigit():
        height = int(height)
    if not isinstance(height, int):
        raise CliError(f"{url}: validators answer has no block_height")
    return chain_id, height


def submit(url: str, key: SigningKey, *, kind: str, body: bytes, wait: bool) -> dict[str, Any]:
    """Sign and broadcast one tx; the node's answer plus the tx hash."""
    chain_id, height = chain_context(url)
    tx = sign_tx(
        key,
        chain_id=chain_id,
        nonce=int.from_bytes(os.urandom(8), "big"),
        expiry_height=height + limits.cli_expiry_heights,
        kind=kind,
        body=body,
    )
    method = "broadcast_tx_commit" if wait else "broadcast_tx_sync"
    encoded = base64.b64encode(tx.encode()).decode("ascii")
    answer = call_sync(url, method, {"tx": encoded}, timeout_s=60.0 if wait else 15.0)
    if not isinstance(answer, dict):
        raise CliError(f"{method}: unexpected answer")
    return answer


def outcome_lines(answer: dict[str, Any]) -> tuple[list[str], bool]:
    """Human lines for a broadcast answer, and whether it succeeded."""
    check = answer.get("check_tx", answer)
    lines = [f"tx hash: {answer.get('hash', check.get('hash', '?'))}"]
    ok = check.get("code") == 0
    if not ok:
        codespace = check.get("codespace") or "?"
        lines.append(f"refused: code {check.get('code')} ({codespace}): {check.get('log', '')}")
        return lines, False
    result = answer.get("tx_result")
    if result is None:
        lines.append("accepted into the mempool (not waiting for commit)")
        return lines, True
    lines.append(f"committed at height {answer.get('height')}")
    if result.get("code") != 0:
        lines.append(f"but failed: code {result.get('code')}: {result.get('log', '')}")
        return lines, False
    lines.append(f"result: {result.get('log') or 'ok'}")
    return lines, True


def notary_show(url: str, doc_hash: bytes) -> tuple[list[str], bool]:
    answer = call_sync(
        url, "query", {"path": "notary/document", "params": {"hash": doc_hash.hex()}}
    )
    if not isinstance(answer, dict) or not answer.get("found"):
        return [f"document {doc_hash.hex()}: not anchored"], False
    record = answer.get("value") or {}
    lines = [
        f"document: {record.get('document_hash')}",
        f"issuer:   {record.get('agency')} ({record.get('issuer')})",
        f"type:     {record.get('doc_type')}",
        f"height:   {record.get('height')}",
        f"time:     {_time_text(record.get('time_ms'))}",
        f"tx:       {record.get('tx_hash')}",
        f"status:   {record.get('status')}",
    ]
    for key, value in sorted((record.get("metadata") or {}).items()):
        lines.append(f"meta:     {key}={value}")
    revocation = record.get("revocation")
    if revocation:
        lines.append(
            f"revoked:  at height {revocation.get('height')}, "
            f"{_time_text(revocation.get('time_ms'))}: {revocation.get('reason')}"
        )
    return lines, True


def _time_text(time_ms: object) -> str:
    if not isinstance(time_ms, int):
        return "?"
    moment = datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def tx_show(url: str, tx_hash: bytes, *, prove: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"hash": tx_hash.hex()}
    if prove:
        params["prove"] = True
    answer = call_sync(url, "tx", params)
    if not isinstance(answer, dict):
        raise CliError("tx: unexpected answer")
    if prove and isinstance(answer.get("proof"), dict):
        # Offer the proof in the portable form `seoulchain verify` and other tools read.
        answer["proof"] = proof_to_json(proof_from_any_json(answer["proof"]))
    return answer


def proof_from_any_json(value: dict[str, Any]) -> TxProof | ResultProof:
    """A proof in protocol/proof_json.py's form, or in the RPC `tx ... prove` form (which
    carries the canonical header and seal bytes as hex)."""
    if "type" in value:
        return proof_from_json(value)
    try:
        return TxProof(
            tx=base64.b64decode(value["tx"], validate=True),
            height=int(value["height"]),
            index=int(value["index"]),
            merkle_proof=decode_proof(bytes.fromhex(value["merkle_proof"]["hex"])),
            header=bytes.fromhex(value["header"]["hex"]),
            seal=bytes.fromhex(value["seal"]["hex"]),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise DecodeError(f"not a proof: {type(error).__name__} {error}") from None


def verify_file(genesis_path: Path, proof_path: Path) -> list[str]:
    """Lines describing what the proof proves; CliError (exit 1) with the reason if not."""
    genesis = load_genesis(genesis_path)
    try:
        with proof_path.open("rb") as handle:
            raw = handle.read(PROOF_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise CliError(f"{proof_path}: cannot read: {error.strerror}") from None
    if len(raw) > PROOF_FILE_BYTES_MAX:
        raise CliError(f"{proof_path}: larger than {PROOF_FILE_BYTES_MAX} bytes")
    try:
        document = json.loads(raw)
        if isinstance(document, dict) and isinstance(document.get("proof"), dict):
            document = document["proof"]  # a saved `tx show --prove` answer
        if not isinstance(document, dict):
            raise DecodeError("a proof is a JSON object")
        proof = proof_from_any_json(document)
        verified = verify_proof(
            proof,
            genesis.validator_set(),
            genesis.chain_id,
            accept_leader_seal=genesis.consensus.kind == "raft",
            pipeline_depth=genesis.consensus.pipeline_depth,
        )
    except (ValueError, DecodeError) as error:  # json, decode and ProofError are ValueErrors
        kind = "INVALID" if isinstance(error, ProofError) else "UNREADABLE"
        raise CliError(f"{kind}: {proof_path}: {error}") from None
    return _verified_lines(verified, validator_count=genesis.validator_set().size)


def _verified_lines(verified: VerifiedTx | VerifiedResult, *, validator_count: int) -> list[str]:
    tx = verified.tx if isinstance(verified, VerifiedResult) else verified
    seal = "quorum seal" if tx.seal_kind == SEAL_QUORUM else "leader seal (Raft)"
    lines = [
        f"OK: tx {tx.tx_hash.hex()} committed on chain {tx.header.chain_id!r}",
        f"  height {tx.height}, index {tx.index}, block {tx.block_hash.hex()}",
        f"  kind {tx.tx.kind}, signer {tx.tx.signer.hex()}, nonce {tx.tx.nonce}",
        f"  {seal}: {len(tx.signers)} of {validator_count} validators signed",
        f"  block time {_time_text(tx.header.time_ms)}",
    ]
    if isinstance(verified, VerifiedResult):
        result = verified.result
        lines.append(
            f"  result code {result.code} ({'success' if result.ok else 'failed'}): {result.log}"
        )
        lines.append(f"  attested by block {verified.attesting_header.height}")
    return lines
