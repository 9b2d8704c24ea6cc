"""The published test vectors: regenerated on every run and compared with the checked-in
file (so neither the code nor the file can drift silently), then re-checked from the
file alone with plain PyNaCl and hashlib, the way a client in another language would,
and finally looked up in docs/PROTOCOL.md, which must quote every one of them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from tests.protocol.protocol_vectors import VECTORS_PATH, generate_vectors, render

DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def _load() -> dict[str, Any]:
    loaded = json.loads(VECTORS_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_vectors_file_matches_the_generator():
    fresh = render(generate_vectors())
    if os.environ.get("SEOULCHAIN_REWRITE_VECTORS") == "1":
        VECTORS_PATH.write_text(fresh)
    assert VECTORS_PATH.read_text() == fresh, (
        "protocol vectors changed; if deliberate, rerun with SEOULCHAIN_REWRITE_VECTORS=1, "
        "review the diff and update docs/PROTOCOL.md"
    )


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _verify(public_key_hex: str, message: bytes, signature_hex: str) -> None:
    """Raises nacl.exceptions.BadSignatureError if the signature does not verify."""
    nacl.signing.VerifyKey(bytes.fromhex(public_key_hex)).verify(
        message, bytes.fromhex(signature_hex)
    )


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash, independent of protocol.merkle."""
    if len(leaves) == 1:
        return _sha256(b"\x00" + leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return _sha256(b"\x01" + _mth(leaves[:split]) + _mth(leaves[split:]))


def test_keys_derive_from_their_secrets():
    vectors = _load()
    for entry in [vectors["keys"]["citizen"], *vectors["keys"]["validators"]]:
        seed = _sha256(b"seoulchain/test-key\n" + entry["secret"].encode())
        assert seed.hex() == entry["seed"]
        public = nacl.signing.SigningKey(seed).verify_key.encode()
        assert public.hex() == entry["public_key"]


def test_tx_signature_and_hash_check_with_plain_nacl():
    vectors = _load()
    tx = vectors["tx"]
    domain = bytes.fromhex(vectors["domains"]["tx"])
    assert domain == b"seoulchain/tx/v1\n"
    payload = bytes.fromhex(tx["signing_payload"])
    _verify(tx["signer"], domain + payload, tx["signature"])
    canonical = bytes.fromhex(tx["canonical"])
    assert canonical == payload + bytes.fromhex(tx["signature"])
    assert _sha256(canonical).hex() == tx["hash"]
    # The payload is exactly the documented fields, in order.
    chain = tx["chain_id"].encode()
    kind = tx["kind"].encode()
    body = bytes.fromhex(tx["body"])
    expected = (
        b"\x01"
        + bytes([len(chain)])
        + chain
        + bytes.fromhex(tx["signer"])
        + tx["nonce"].to_bytes(8, "big")
        + tx["expiry_height"].to_bytes(8, "big")
        + bytes([len(kind)])
        + kind
        + len(body).to_bytes(4, "big")
        + body
    )
    assert payload == expected


def test_block_hash_and_txs_root_check_with_hashlib():
    block = _load()["block"]
    hashes = [_sha256(bytes.fromhex(raw)) for raw in block["tx_canonical"]]
    assert [digest.hex() for digest in hashes] == block["tx_hashes"]
    assert _mth(hashes).hex() == block["txs_root"]
    header = bytes.fromhex(block["header"])
    assert _sha256(header).hex() == block["hash"]
    assert bytes.fromhex(block["txs_root"]) in header


def test_merkle_proof_checks_by_hand():
    proof = _load()["merkle_proof"]
    assert (proof["index"], proof["total"]) == (1, 3)
    leaf = _sha256(b"\x00" + bytes.fromhex(proof["item"]))
    left_pair = _sha256(b"\x01" + bytes.fromhex(proof["path"][0]) + leaf)  # index 1: right child
    root = _sha256(b"\x01" + left_pair + bytes.fromhex(proof["path"][1]))
    assert root.hex() == proof["root"]


def test_commit_vote_and_seal_signatures_check_with_plain_nacl():
    vectors = _load()
    vote = vectors["commit_vote"]
    domain = bytes.fromhex(vectors["domains"]["commit_vote"])
    payload = bytes.fromhex(vote["payload"])
    keys = vectors["validators"]["public_keys"]
    _verify(keys[vote["validator_index"]], domain + payload, vote["signature"])
    seal = bytes.fromhex(vectors["seal"]["encoding"])
    assert seal[0] == 1
    assert seal[17:49].hex() == vote["block_hash"]
    count = int.from_bytes(seal[49:51], "big")
    assert count == len(vectors["seal"]["signers"]) >= vectors["validators"]["quorum"]
    for i in range(count):
        entry = seal[51 + 66 * i : 51 + 66 * (i + 1)]
        index = int.from_bytes(entry[:2], "big")
        assert index == vectors["seal"]["signers"][i]
        _verify(keys[index], domain + payload, entry[2:].hex())
    assert len(seal) == 51 + 66 * count


def test_leader_seal_checks_with_plain_nacl():
    vectors = _load()
    seal = bytes.fromhex(vectors["leader_seal"]["encoding"])
    assert seal[0] == 2
    term = int.from_bytes(seal[1:9], "big")
    chain = vectors["chain_id"].encode()
    payload = bytes([len(chain)]) + chain + term.to_bytes(8, "big") + seal[9:17] + seal[17:49]
    domain = bytes.fromhex(vectors["domains"]["raft_seal"])
    leader = int.from_bytes(seal[51:53], "big")
    _verify(vectors["validators"]["public_keys"][leader], domain + payload, seal[53:].hex())


def test_validators_hash_checks_with_hashlib():
    vectors = _load()
    keys = [bytes.fromhex(key) for key in vectors["validators"]["public_keys"]]
    data = bytes.fromhex(vectors["domains"]["validators"]) + len(keys).to_bytes(2, "big")
    assert _sha256(data + b"".join(keys)).hex() == vectors["validators"]["hash"]


def test_results_root_checks_with_hashlib():
    results = _load()["results"]
    encoded = bytes.fromhex(results["encoding"])
    count = int.from_bytes(encoded[:4], "big")
    offset, hashes = 4, []
    for _ in range(count):
        log_size = int.from_bytes(encoded[offset + 4 : offset + 6], "big")
        data_at = offset + 6 + log_size
        data_size = int.from_bytes(encoded[data_at : data_at + 4], "big")
        end = data_at + 4 + data_size
        hashes.append(_sha256(encoded[offset:end]))
        offset = end
    assert offset == len(encoded)
    assert [digest.hex() for digest in hashes] == results["result_hashes"]
    assert _mth(hashes).hex() == results["results_root"]


def test_tx_proof_json_carries_the_binary_parts():
    vectors = _load()
    proof = vectors["tx_proof"]["json"]
    assert base64.b64decode(proof["tx"]).hex() == vectors["block"]["tx_canonical"][1]
    assert base64.b64decode(proof["header"]).hex() == vectors["block"]["header"]
    assert base64.b64decode(proof["seal"]).hex() == vectors["seal"]["encoding"]
    assert proof["merkle_proof"]["path"] == vectors["merkle_proof"]["path"]


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value] if isinstance(value, str) and len(value) >= 16 else []


def test_docs_quote_every_vector():
    if not DOCS_PATH.exists():
        pytest.fail(f"{DOCS_PATH} is missing")
    docs = DOCS_PATH.read_text()
    missing = [leaf[:40] for leaf in _leaves(_load()) if leaf not in docs]
    assert missing == [], f"docs/PROTOCOL.md does not quote these vectors: {missing}"
