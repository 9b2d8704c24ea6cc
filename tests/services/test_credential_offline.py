"""Offline credential presentations (issue 7): a holder shows the issuance tx with its proof
and signs a verifier's challenge; the verifier needs only the genesis. Real blocks, real
seals, real execution results."""

from __future__ import annotations

import dataclasses

import pytest

from protocol.crypto import ZERO_HASH, SigningKey
from protocol.proof import ResultProof, TxProof, make_result_proof, make_tx_proof
from protocol.results import results_root
from protocol.sealed import SealedBlock
from protocol.tx import Tx
from protocol.validators import ValidatorSet
from services.app import SeoulApplication
from services.credential import credential_id, encode_issue
from services.credential_offline import (
    Presentation,
    PresentationError,
    VerifiedCredential,
    presentation_from_json,
    presentation_to_json,
    sign_presentation,
    verify_presentation,
)
from services.genesis import Agency, ServicesGenesis
from services.testing import AppHarness
from tests.protocol.protocol_samples import (
    CHAIN_ID,
    quorum_seal,
    sample_block,
    validator_keys,
    validator_set,
)
from tests.services.services_helpers import sign

LICENSING = SigningKey.from_secret(b"licensing")
NOTARY_ONLY = SigningKey.from_secret(b"notary-only")
HOLDER = SigningKey.from_secret(b"holder-kim")
CHALLENGE = b"verifier-nonce-0123456789abcdef"
KEYS = validator_keys(4)
VALIDATORS = validator_set(KEYS)
GENESIS = ServicesGenesis(
    chain_id=CHAIN_ID,
    agencies=(
        Agency(name="Licensing", public_key=LICENSING.public_key, roles=("credential_issuer",)),
        Agency(name="Notary", public_key=NOTARY_ONLY.public_key, roles=("notary",)),
    ),
)
T0 = 1_700_000_000_000


def issue_tx(key: SigningKey = LICENSING, *, until: int = T0 + 10_000_000) -> Tx:
    body = encode_issue(
        cred_type="nurse-licence",
        holder=HOLDER.public_key,
        serial="N-7",
        valid_from_ms=T0 - 1000,
        valid_until_ms=until,
        claims={"grade": "RN"},
    )
    return sign(key, "credential.issue", body)


def committed(tx: Tx) -> tuple[TxProof, ResultProof]:
    """Execute `tx` in a real application, then seal it in block 1 and attest its result in
    block 3 (pipeline depth 2), as the node does."""
    harness = AppHarness(SeoulApplication(GENESIS), chain_id=CHAIN_ID)
    results = harness.run_block([tx]).results
    blocks = []
    prev = ZERO_HASH
    for height in (1, 2, 3):
        block = sample_block(
            height,
            (tx,) if height == 1 else (),
            validators=VALIDATORS,
            prev_hash=prev,
            exec_height=1 if height == 3 else 0,
            exec_results_root=results_root(results) if height == 3 else ZERO_HASH,
        )
        blocks.append(SealedBlock(block=block, seal=quorum_seal(block, KEYS, [0, 1, 2])))
        prev = block.hash()
    tx_proof = make_tx_proof(blocks[0], 0)
    result_proof = make_result_proof(
        sealed=blocks[0], results=results, index=0, attesting=blocks[2]
    )
    return tx_proof, result_proof


def the_id(issuer: SigningKey = LICENSING) -> bytes:
    return credential_id(
        issuer=issuer.public_key, holder=HOLDER.public_key, cred_type="nurse-licence", serial="N-7"
    )


def present(proof: TxProof | ResultProof, issuer: SigningKey = LICENSING) -> Presentation:
    signature = sign_presentation(
        HOLDER, chain_id=CHAIN_ID, credential=the_id(issuer), challenge=CHALLENGE
    )
    return Presentation(proof=proof, holder_signature=signature)


def check(
    presentation: Presentation,
    *,
    validators: ValidatorSet = VALIDATORS,
    challenge: bytes = CHALLENGE,
    at_ms: int = T0,
    expected_type: str | None = None,
    expected_holder: bytes | None = None,
) -> VerifiedCredential:
    return verify_presentation(
        presentation,
        genesis=GENESIS,
        validators=validators,
        challenge=challenge,
        at_ms=at_ms,
        expected_type=expected_type,
        expected_holder=expected_holder,
    )


def test_result_proof_presentation_verifies_offline() -> None:
    _, result_proof = committed(issue_tx())
    verified = check(present(result_proof), expected_type="nurse-licence")
    assert verified.credential_id == the_id()
    assert verified.agency == "Licensing"
    assert verified.claims == {"grade": "RN"}
    assert verified.result_proven


def test_tx_proof_presentation_verifies_but_says_the_result_is_not_proven() -> None:
    tx_proof, _ = committed(issue_tx())
    verified = check(present(tx_proof), expected_holder=HOLDER.public_key)
    assert not verified.result_proven


def test_failed_issuance_is_refused_with_a_result_proof() -> None:
    """The notary-only agency's issue tx is committed but refused (UNAUTHORIZED)."""
    _, result_proof = committed(issue_tx(NOTARY_ONLY))
    with pytest.raises(PresentationError, match="issuance failed on chain: code 7"):
        check(present(result_proof, NOTARY_ONLY))


def test_issuer_without_the_role_at_genesis_is_refused_even_with_a_tx_proof() -> None:
    tx_proof, _ = committed(issue_tx(NOTARY_ONLY))
    with pytest.raises(PresentationError, match="lacks role credential_issuer"):
        check(present(tx_proof, NOTARY_ONLY))


def test_wrong_challenge_or_signer_is_refused() -> None:
    _, proof = committed(issue_tx())
    with pytest.raises(PresentationError, match="holder signature"):
        check(present(proof), challenge=b"another-verifier-nonce-000000")
    impostor = sign_presentation(
        SigningKey.from_secret(b"impostor"),
        chain_id=CHAIN_ID,
        credential=the_id(),
        challenge=CHALLENGE,
    )
    with pytest.raises(PresentationError, match="holder signature"):
        check(Presentation(proof=proof, holder_signature=impostor))
    with pytest.raises(PresentationError, match="challenge must be"):
        check(present(proof), challenge=b"short")


def test_validity_window_type_and_holder_are_checked() -> None:
    _, proof = committed(issue_tx(until=T0 + 5))
    check(present(proof), at_ms=T0 + 4)
    with pytest.raises(PresentationError, match="expired"):
        check(present(proof), at_ms=T0 + 5)
    with pytest.raises(PresentationError, match="not_yet_valid"):
        check(present(proof), at_ms=T0 - 1001)
    with pytest.raises(PresentationError, match="type"):
        check(present(proof), expected_type="doctor-licence")
    with pytest.raises(PresentationError, match="another holder"):
        check(present(proof), expected_holder=LICENSING.public_key)


def test_forged_or_foreign_proofs_are_refused() -> None:
    tx_proof, _ = committed(issue_tx())
    other_validators = validator_set(validator_keys(5))
    with pytest.raises(PresentationError, match="proof: header names another validator set"):
        check(present(tx_proof), validators=other_validators)
    # A genuine quorum seal, but over another block at the same height.
    forged_seal = quorum_seal(sample_block(1, (), validators=VALIDATORS), KEYS, [0, 1, 2]).encode()
    with pytest.raises(PresentationError, match="proof: seal"):
        check(present(dataclasses.replace(tx_proof, seal=forged_seal)))


def test_presentation_json_round_trip_and_strict_parse() -> None:
    _, proof = committed(issue_tx())
    presentation = present(proof)
    assert presentation_from_json(presentation_to_json(presentation)) == presentation
    bad_values: list[object] = [{}, {"proof": {}, "holder_signature": "00" * 64}, []]
    for bad in bad_values:
        with pytest.raises(PresentationError):
            presentation_from_json(bad)
