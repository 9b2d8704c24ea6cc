"""Offline tx and result proofs: honest proofs verify against the genesis validator set and
chain id alone; every way of lying (another chain, another validator set, another block,
another index, a forged count, a short seal, a Raft seal where a quorum is needed, a
tampered byte) is refused with ProofError, never another exception."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import DecodeError
from protocol.merkle import MerkleProof, prove
from protocol.proof import (
    ProofError,
    ResultProof,
    TxProof,
    decode_any_proof,
    decode_result_proof,
    decode_tx_proof,
    make_result_proof,
    make_tx_proof,
    verify_proof,
    verify_result_proof,
    verify_tx_proof,
)
from protocol.proof_json import proof_from_json, proof_to_json
from protocol.seal import SEAL_LEADER, SEAL_QUORUM
from protocol.tx import decode_tx
from tests.protocol.protocol_samples import (
    CHAIN_ID,
    PIPELINE_DEPTH,
    quorum_seal,
    sample_chain,
    validator_keys,
    validator_set,
)

CHAIN = sample_chain(heights=5, txs_per_block=3)
RAFT = sample_chain(heights=3, txs_per_block=3, leader=True)
V = CHAIN.validators


def _tx_proof(height: int = 2, index: int = 1) -> TxProof:
    return make_tx_proof(CHAIN.at(height), index)


def _result_proof(height: int = 2, index: int = 1, chain=CHAIN) -> ResultProof:
    return make_result_proof(
        sealed=chain.at(height),
        results=chain.results[height - 1],
        index=index,
        attesting=chain.at(height + PIPELINE_DEPTH),
    )


def _refused(proof: TxProof | ResultProof, match: str, **kwargs) -> None:
    with pytest.raises(ProofError, match=match):
        verify_proof(proof, kwargs.pop("validators", V), kwargs.pop("chain_id", CHAIN_ID), **kwargs)


def test_every_tx_of_every_block_has_a_verifying_proof():
    for height in range(1, 6):
        for index in range(3):
            verified = verify_tx_proof(_tx_proof(height, index), V, CHAIN_ID)
            assert verified.tx == CHAIN.at(height).block.txs[index]
            assert verified.height == height
            assert verified.index == index
            assert verified.block_hash == CHAIN.at(height).block.hash()
            assert verified.seal_kind == SEAL_QUORUM
            assert verified.signers == V.public_keys


def test_proof_of_single_tx_block():
    single = sample_chain(heights=1, txs_per_block=1)
    proof = make_tx_proof(single.at(1), 0)
    assert proof.merkle_proof.path == ()
    assert verify_tx_proof(proof, single.validators, CHAIN_ID).index == 0


def test_another_chain_id_is_refused():
    _refused(_tx_proof(), "chain", chain_id="other-chain")
    _refused(_tx_proof(), "bad chain id", chain_id="Not Valid")


def test_another_validator_set_is_refused():
    others = validator_set(validator_keys(5))
    _refused(_tx_proof(), "another validator set", validators=others)


def test_tx_from_another_block_is_refused():
    proof = _tx_proof(2, 1)
    stranger = CHAIN.at(3).block.encoded_txs()[1]
    _refused(replace(proof, tx=stranger), "Merkle path")


def test_shifted_index_is_refused():
    proof = _tx_proof(2, 1)
    _refused(replace(proof, index=2), "index")
    moved = replace(proof.merkle_proof, index=2)
    _refused(replace(proof, index=2, merkle_proof=moved), "Merkle path")


def test_forged_total_is_refused_even_when_the_path_would_verify():
    """Leaf 2 of 3 has the same path as leaf 1 of 2; the header's tx_count decides."""
    proof = _tx_proof(2, 2)
    forged = MerkleProof(index=1, total=2, path=proof.merkle_proof.path)
    _refused(replace(proof, index=1, merkle_proof=forged), "leaves")


def test_wrong_claimed_height_is_refused():
    _refused(replace(_tx_proof(2, 1), height=3), "height")


def test_header_from_another_height_is_refused():
    proof = _tx_proof(2, 1)
    _refused(replace(proof, header=CHAIN.at(3).block.header.encode()), "height|Merkle|seal")


def test_seal_of_another_block_is_refused():
    _refused(replace(_tx_proof(2, 1), seal=CHAIN.at(3).seal.encode()), "seal: seal is for")


def test_seal_without_quorum_is_refused():
    short = quorum_seal(CHAIN.at(2).block, CHAIN.keys, [0, 3])
    _refused(replace(_tx_proof(2, 1), seal=short.encode()), "quorum")


def test_leader_seal_needs_explicit_acceptance():
    proof = make_tx_proof(RAFT.at(2), 0)
    _refused(proof, "leader seal", validators=RAFT.validators)
    verified = verify_tx_proof(proof, RAFT.validators, CHAIN_ID, accept_leader_seal=True)
    assert verified.seal_kind == SEAL_LEADER
    assert verified.signers == (RAFT.validators.public_keys[1],)


def test_undecodable_parts_are_proof_errors():
    proof = _tx_proof()
    _refused(replace(proof, tx=b"\x01garbage"), "tx does not decode")
    _refused(replace(proof, header=b""), "header does not decode")
    _refused(replace(proof, seal=b"\x09"), "seal does not decode")


def test_result_proofs_verify_for_every_executed_tx():
    for height in range(1, 4):
        for index in range(3):
            verified = verify_result_proof(
                _result_proof(height, index), V, CHAIN_ID, pipeline_depth=PIPELINE_DEPTH
            )
            assert verified.result == CHAIN.results[height - 1][index]
            assert verified.tx.tx == CHAIN.at(height).block.txs[index]
            assert verified.attesting_header.height == height + PIPELINE_DEPTH
            assert verified.attesting_header.exec_height == height


def test_result_proof_with_wrong_pipeline_depth_is_refused():
    _refused(_result_proof(), r"want 2 \+ 1", pipeline_depth=1)


def test_result_attested_by_the_wrong_header_is_refused():
    proof = _result_proof(2, 1)
    wrong = CHAIN.at(5)
    _refused(
        replace(proof, header=wrong.block.header.encode(), seal=wrong.seal.encode()), "executes"
    )


def test_result_of_another_tx_is_refused():
    proof = _result_proof(2, 1)
    other = CHAIN.results[1][2].encode()
    _refused(replace(proof, result=other), "Merkle path")


def test_result_index_shift_is_refused():
    """Result 2 of 3 would verify as result 1 of 2 by the path alone; the tx proof's
    sealed tx_count and index pin it."""
    honest = _result_proof(2, 2)
    shifted_tx_proof = _tx_proof(2, 1)
    forged_path = MerkleProof(index=1, total=2, path=honest.merkle_proof.path)
    forged = replace(honest, tx_proof=shifted_tx_proof, merkle_proof=forged_path)
    _refused(forged, "leaves")
    forged_index_only = replace(honest, tx_proof=shifted_tx_proof)
    _refused(forged_index_only, "index")


def test_raft_result_proof_needs_explicit_acceptance():
    proof = _result_proof(1, 0, chain=RAFT)
    _refused(proof, "leader seal", validators=RAFT.validators)
    verified = verify_result_proof(proof, RAFT.validators, CHAIN_ID, accept_leader_seal=True)
    assert verified.result == RAFT.results[0][0]


def test_binary_form_round_trips_and_verifies():
    for proof in (_tx_proof(), _result_proof()):
        decoded = decode_any_proof(proof.encode())
        assert decoded == proof
        verify_proof(decoded, V, CHAIN_ID)
    assert decode_tx_proof(_tx_proof().encode()) == _tx_proof()
    assert decode_result_proof(_result_proof().encode()) == _result_proof()
    with pytest.raises(DecodeError, match="expected a tx proof"):
        decode_tx_proof(_result_proof().encode())
    with pytest.raises(DecodeError, match="expected a result proof"):
        decode_result_proof(_tx_proof().encode())


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_bit_flip_in_an_encoded_proof_is_refused(data):
    proof = data.draw(st.sampled_from([_tx_proof(2, 1), _result_proof(1, 2)]))
    encoded = bytearray(proof.encode())
    bit = data.draw(st.integers(min_value=0, max_value=len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    try:
        tampered = decode_any_proof(bytes(encoded))
    except DecodeError:
        return
    with pytest.raises(ProofError):
        verify_proof(tampered, V, CHAIN_ID, pipeline_depth=PIPELINE_DEPTH)


def test_json_form_round_trips_through_text():
    for proof in (_tx_proof(), _result_proof()):
        as_json = proof_to_json(proof)
        text = json.dumps(as_json)
        assert proof_from_json(text) == proof
        assert proof_from_json(json.loads(text)) == proof
        verify_proof(proof_from_json(text), V, CHAIN_ID)


def test_json_form_uses_base64_blobs_and_lowercase_hex_hashes():
    as_json = proof_to_json(_tx_proof(2, 1))
    assert decode_tx(base64.b64decode(as_json["tx"])) == CHAIN.at(2).block.txs[1]
    path = as_json["merkle_proof"]["path"]
    assert path == [sibling.hex() for sibling in prove(CHAIN.at(2).block.tx_hashes(), 1).path]
    assert all(item == item.lower() and len(item) == 64 for item in path)


def _json_mutants() -> list[tuple[str, object]]:
    good = proof_to_json(_tx_proof(2, 1))
    path0 = good["merkle_proof"]["path"][0]
    return [
        ("not an object", []),
        ("unknown type", {**good, "type": "block_proof"}),
        ("extra key", {**good, "extra": 1}),
        ("missing key", {k: v for k, v in good.items() if k != "seal"}),
        ("bool height", {**good, "height": True}),
        ("negative index", {**good, "index": -1}),
        ("huge height", {**good, "height": 1 << 64}),
        ("string height", {**good, "height": "2"}),
        ("wrong version", {**good, "version": 2}),
        ("bad base64", {**good, "tx": "!!!"}),
        ("non-canonical base64", {**good, "seal": good["seal"][:-2] + "=="}),
        ("garbage tx", {**good, "tx": "AAAA"}),
        ("upper hex", {**good, "merkle_proof": {**good["merkle_proof"], "path": [path0.upper()]}}),
        ("short hex", {**good, "merkle_proof": {**good["merkle_proof"], "path": [path0[:62]]}}),
        ("index >= total", {**good, "merkle_proof": {**good["merkle_proof"], "index": 3}}),
        ("merkle not object", {**good, "merkle_proof": "x"}),
        (
            "nested wrong type",
            {**proof_to_json(_result_proof()), "tx_proof": {**good, "type": "result_proof"}},
        ),
    ]


@pytest.mark.parametrize(("name", "mutant"), _json_mutants(), ids=[n for n, _ in _json_mutants()])
def test_malformed_json_is_a_decode_error(name, mutant):
    with pytest.raises(DecodeError):
        proof_from_json(mutant)


@pytest.mark.parametrize("text", ["", "{", "[1,", "\xff", "null", '"x"', "[" * 5000 + "]" * 5000])
def test_malformed_json_text_is_a_decode_error(text):
    with pytest.raises(DecodeError):
        proof_from_json(text)
