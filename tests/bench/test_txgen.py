"""Pre-signed load (bench/txgen.py): valid, unique, correctly sized notary anchors."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bench import txgen
from node.keys import write_key_file
from protocol.crypto import SigningKey
from protocol.tx import decode_tx
from services.notary import encode_anchor

CHAIN = "seoulchain-local"


def keys(count: int) -> list[SigningKey]:
    return [SigningKey.from_secret(f"agency{i}".encode()) for i in range(count)]


def spec(tx_bytes: int = 250) -> txgen.LoadSpec:
    return txgen.LoadSpec(chain_id=CHAIN, expiry_height=1_000, tx_bytes=tx_bytes, run_tag="t")


def test_anchor_body_is_byte_identical_to_the_notary_service_encoder() -> None:
    document_hash = bytes(range(32))
    metadata = {"ref": "000000001", "n00": "x" * 256}
    ours = txgen.encode_anchor_body(document_hash, "land-title", metadata)
    assert ours == encode_anchor(document_hash, "land-title", metadata)
    bare = txgen.encode_anchor_body(document_hash, "birth-cert", {})
    assert bare == encode_anchor(document_hash, "birth-cert", {})


@pytest.mark.parametrize("target", [250, 400, 1000, 4000])
def test_txs_are_padded_to_the_target_size(target: int) -> None:
    signed = txgen.sign_all(spec(target), keys(3), 8, workers=0).txs
    assert {tx.size for tx in signed} == {target}


def test_signed_txs_decode_verify_and_are_unique() -> None:
    agency_keys = keys(4)
    signed = txgen.sign_all(spec(), agency_keys, 40, workers=0).txs
    decoded = [decode_tx(base64.b64decode(tx.text)) for tx in signed]
    assert all(tx.verify_signature() for tx in decoded)
    assert all(tx.kind == "notary.anchor" and tx.chain_id == CHAIN for tx in decoded)
    assert len({tx.hash_hex for tx in signed}) == 40
    assert [tx.hash().hex() for tx in decoded] == [tx.hash_hex for tx in signed]
    # round-robin over agencies, and (signer, nonce) never repeats
    assert [tx.signer for tx in decoded[:4]] == [key.public_key for key in agency_keys]
    assert len({tx.replay_key for tx in decoded}) == 40
    assert len({tx.body for tx in decoded}) == 40  # unique document hashes


def test_pool_signing_gives_the_same_txs_in_the_same_order_as_in_process() -> None:
    count = txgen.SIGN_CHUNK_TXS + 10  # two chunks, so the pool is used
    pooled = txgen.sign_all(spec(), keys(2), count, workers=2)
    assert pooled.workers == 2
    assert len(pooled.txs) == count
    decoded = [decode_tx(base64.b64decode(tx.text)) for tx in pooled.txs[-5:]]
    assert all(tx.verify_signature() for tx in decoded)
    first_nonce = decode_tx(base64.b64decode(pooled.txs[0].text)).nonce
    last = decode_tx(base64.b64decode(pooled.txs[count - 2].text))
    assert last.nonce == first_nonce + (count - 2) // 2  # agency 0's nonces count up


def test_agency_keys_are_read_from_the_node_key_file_format(tmp_path: Path) -> None:
    folder = tmp_path / "agencies"
    folder.mkdir()
    written = keys(3)
    for index, key in enumerate(written):
        write_key_file(folder / f"agency{index}.json", key)
    loaded = txgen.load_agency_keys(tmp_path)
    assert [k.public_key for k in loaded] == [k.public_key for k in written]


def test_exposed_or_missing_agency_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(txgen.TxGenError, match="no agency"):
        txgen.load_agency_keys(tmp_path)
    write_key_file(tmp_path / "agency0.json", keys(1)[0])
    os.chmod(tmp_path / "agency0.json", 0o644)
    with pytest.raises(txgen.TxGenError, match="chmod 600"):
        txgen.load_agency_keys(tmp_path)
