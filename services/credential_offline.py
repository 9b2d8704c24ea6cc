"""Offline check of a credential a holder presents: no node, only the genesis.

The holder keeps the `credential.issue` tx with its proof (protocol/proof.py: a TxProof, or
better a ResultProof, which also proves the tx executed with code 0). A verifier gives the
holder a fresh random challenge; the holder signs it with the key the credential names.
`verify_presentation` then checks, with nothing but the genesis validator set and agencies:

    1. the proof: the tx is in a block sealed by a quorum of the genesis validators
       (a ResultProof also: its result code is 0);
    2. the tx is a `credential.issue` whose body decodes exactly as the chain decodes it;
    3. its signer is a genesis agency holding role `credential_issuer`;
    4. the holder signature over (chain id, credential id, challenge) verifies with the
       holder key in the body: the presenter holds the key, and cannot replay an old
       presentation to another verifier (fresh challenge);
    5. optionally the expected type and holder; and `at_ms` lies in the validity window.

What it cannot see, by design: a revocation, or a governance change to the issuer's roles
after genesis. Both are later txs; only an online query (`credential/verify`) sees them.
A verifier who must exclude revoked credentials asks a node, or accepts the risk for as long
as the issuer's revocation policy allows (docs/services/credential.md §Offline check).
Everything here is a pure function: importable by the CLI and by other clients.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol.crypto import SigningKey, verify
from protocol.encoding import DecodeError
from protocol.proof import ProofError, ResultProof, TxProof, VerifiedResult, verify_proof
from protocol.proof_json import proof_from_json, proof_to_json
from protocol.results import TxResult
from protocol.validators import ValidatorSet
from services import bodies
from services.credential import ROLE, IssueBody, credential_id, window_status
from services.genesis import ServicesGenesis

log = logging.getLogger(__name__)

DOMAIN_PRESENTATION = b"seoulchain/credential-presentation/v1\n"
CHALLENGE_BYTES_MIN = 16  # a verifier's random nonce: short ones could be guessed and reused
CHALLENGE_BYTES_MAX = 256
ISSUE_KIND = "credential.issue"
_ISSUE_DECODER = msgspec.msgpack.Decoder(IssueBody)


class PresentationError(ValueError):
    """The presentation does not show a valid credential; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Presentation:
    proof: TxProof | ResultProof  # of the credential.issue tx
    holder_signature: bytes  # over presentation_payload(...) by the credential's holder key


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedCredential:
    credential_id: bytes
    issuer: bytes
    agency: str  # the issuer's genesis agency name
    cred_type: str
    holder: bytes
    serial: str
    claims: Mapping[str, str]
    valid_from_ms: int
    valid_until_ms: int
    height: int
    tx_hash: bytes
    result_proven: bool  # True for a ResultProof: code 0 is proven, not assumed


def presentation_payload(*, chain_id: str, credential: bytes, challenge: bytes) -> bytes:
    """What the holder signs: u8 len | chain id | 32 B credential id | u16 len | challenge."""
    raw_chain = chain_id.encode("ascii")
    assert len(credential) == 32
    assert len(raw_chain) < 256
    assert len(challenge) <= CHALLENGE_BYTES_MAX
    return (
        bytes([len(raw_chain)])
        + raw_chain
        + credential
        + len(challenge).to_bytes(2, "big")
        + challenge
    )


def sign_presentation(
    holder_key: SigningKey, *, chain_id: str, credential: bytes, challenge: bytes
) -> bytes:
    payload = presentation_payload(chain_id=chain_id, credential=credential, challenge=challenge)
    return holder_key.sign(DOMAIN_PRESENTATION, payload)


def verify_presentation(
    presentation: Presentation,
    *,
    genesis: ServicesGenesis,
    validators: ValidatorSet,
    challenge: bytes,
    at_ms: int,
    expected_type: str | None = None,
    expected_holder: bytes | None = None,
    accept_leader_seal: bool = False,
) -> VerifiedCredential:
    """The credential the presentation proves, or PresentationError(reason)."""
    if not CHALLENGE_BYTES_MIN <= len(challenge) <= CHALLENGE_BYTES_MAX:
        raise PresentationError(
            f"challenge must be {CHALLENGE_BYTES_MIN}..{CHALLENGE_BYTES_MAX} bytes"
        )
    try:
        verified = verify_proof(
            presentation.proof,
            validators,
            genesis.chain_id,
            accept_leader_seal=accept_leader_seal,
        )
    except ProofError as error:
        raise PresentationError(f"proof: {error.reason}") from None
    proven = isinstance(verified, VerifiedResult)
    if isinstance(verified, VerifiedResult):
        if not verified.result.ok:
            raise PresentationError(f"issuance failed on chain: code {verified.result.code}")
        verified_tx = verified.tx
    else:
        verified_tx = verified
    tx = verified_tx.tx
    if tx.kind != ISSUE_KIND:
        raise PresentationError(f"tx is {tx.kind!r}, not {ISSUE_KIND!r}")
    body = bodies.decode_body(_ISSUE_DECODER, tx.body, detailed=True)
    if isinstance(body, TxResult):
        raise PresentationError(f"issuance body: {body.log}")
    assert isinstance(body, IssueBody)
    agency = _genesis_issuer(genesis, tx.signer)
    ident = credential_id(
        issuer=tx.signer, holder=body.holder, cred_type=body.cred_type, serial=body.serial
    )
    _check_holder(presentation, genesis.chain_id, ident, challenge, body.holder)
    if expected_holder is not None and expected_holder != body.holder:
        raise PresentationError("credential belongs to another holder")
    if expected_type is not None and expected_type != body.cred_type:
        raise PresentationError(f"credential is of type {body.cred_type!r}")
    status = window_status(body.valid_from_ms, body.valid_until_ms, at_ms)
    if status != "valid":
        raise PresentationError(f"credential is {status} at {at_ms}")
    return VerifiedCredential(
        credential_id=ident,
        issuer=tx.signer,
        agency=agency,
        cred_type=body.cred_type,
        holder=body.holder,
        serial=body.serial,
        claims=dict(sorted(body.claims.items())),
        valid_from_ms=body.valid_from_ms,
        valid_until_ms=body.valid_until_ms,
        height=verified_tx.height,
        tx_hash=verified_tx.tx_hash,
        result_proven=proven,
    )


def _genesis_issuer(genesis: ServicesGenesis, signer: bytes) -> str:
    for agency in genesis.agencies:
        if agency.public_key == signer:
            if ROLE not in agency.roles:
                raise PresentationError(f"issuer {agency.name!r} lacks role {ROLE} at genesis")
            return agency.name
    raise PresentationError("issuer is not a genesis agency")


def _check_holder(
    presentation: Presentation, chain_id: str, ident: bytes, challenge: bytes, holder: bytes
) -> None:
    payload = presentation_payload(chain_id=chain_id, credential=ident, challenge=challenge)
    if not verify(holder, DOMAIN_PRESENTATION, payload, presentation.holder_signature):
        raise PresentationError("holder signature over the challenge is invalid")


def presentation_to_json(presentation: Presentation) -> dict[str, Any]:
    return {
        "proof": proof_to_json(presentation.proof),
        "holder_signature": presentation.holder_signature.hex(),
    }


def presentation_from_json(value: Any) -> Presentation:
    """Strict parse of presentation_to_json's form; PresentationError on anything else."""
    if not isinstance(value, dict) or set(value) != {"proof", "holder_signature"}:
        raise PresentationError("presentation must be {proof, holder_signature}")
    signature_hex = value["holder_signature"]
    if not isinstance(signature_hex, str) or len(signature_hex) != 128:
        raise PresentationError("holder_signature must be 128 hex characters")
    try:
        signature = bytes.fromhex(signature_hex)
        proof = proof_from_json(value["proof"])
    except (DecodeError, ValueError, TypeError, KeyError, binascii.Error) as error:
        raise PresentationError(f"bad presentation: {error}") from None
    return Presentation(proof=proof, holder_signature=signature)
