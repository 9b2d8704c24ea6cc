"""Shared credentials: accredited agencies issue credentials to a holder's public key.

An agency with role `credential_issuer` issues a credential (type, holder key, a bounded claims
map, a validity window in ms) that any party can look up and check; the issuing agency may
revoke it. The credential's id is deterministic — a hash of issuer, holder, type and serial —
so the holder, a verifier and the issuer all compute the same id without asking the chain,
and the same credential cannot be issued twice (docs/services/credential.md).

Offline presentation (the holder shows the issuance tx with its proof, plus a signature over
the verifier's challenge) lives in services/credential_offline.py; it cannot see a later
revocation, which needs this service's online query.

Rules (the router has already checked envelope, role and body):
    credential.issue   valid_from_ms < valid_until_ms        else CREDENTIAL_BAD_WINDOW
                       valid_until_ms > block time           else CREDENTIAL_EXPIRY_PASSED
                       id not issued before (even revoked)   else CREDENTIAL_DUPLICATE
    credential.revoke  id issued                             else CREDENTIAL_UNKNOWN
                       by the issuing agency (same key, or
                       same agency name after a key rotation) else CREDENTIAL_NOT_ISSUER
                       not revoked yet                       else CREDENTIAL_ALREADY_REVOKED

State:
    credential/id/<32B id>                                  -> msgpack CredentialRecord
    credential/holder/<32B holder><u64 height><u32 index>   -> 32B id (holder's listing)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from protocol.crypto import HASH_BYTES, PUBLIC_KEY_BYTES, sha256
from protocol.results import TxResult
from services import agencies, params
from services.codes import Code
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext
from services.service_fields import Revocation, revocation_for

log = logging.getLogger(__name__)

ROLE = "credential_issuer"
ID_PREFIX = b"credential/id/"
HOLDER_PREFIX = b"credential/holder/"
DOMAIN_CREDENTIAL_ID = b"seoulchain/credential-id/v1\n"
_CURSOR_BYTES = 12  # u64 height | u32 tx index
I63_MAX = 2**63 - 1  # msgspec integer bounds must fit an int64

_PRINTABLE = r"^[^\x00-\x1f\x7f]*\Z"
PublicKey = Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_BYTES, max_length=PUBLIC_KEY_BYTES)]
CredentialId = Annotated[bytes, msgspec.Meta(min_length=HASH_BYTES, max_length=HASH_BYTES)]
CredentialType = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
Serial = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
ClaimKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
ClaimValue = Annotated[str, msgspec.Meta(max_length=256, pattern=_PRINTABLE)]
Claims = Annotated[dict[ClaimKey, ClaimValue], msgspec.Meta(max_length=16)]
TimeMs = Annotated[int, msgspec.Meta(ge=0, le=I63_MAX)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=_PRINTABLE)]


class IssueBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `credential.issue` (msgpack map)."""

    cred_type: CredentialType
    holder: PublicKey
    serial: Serial
    valid_from_ms: TimeMs
    valid_until_ms: TimeMs
    claims: Claims = msgspec.field(default_factory=dict)


class RevokeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `credential.revoke` (msgpack map)."""

    credential_id: CredentialId
    reason: Reason


class CredentialRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the chain keeps per credential; every field encoded, claims sorted."""

    credential_id: bytes
    issuer: bytes
    agency: str
    cred_type: str
    holder: bytes
    serial: str
    claims: dict[str, str]
    valid_from_ms: int
    valid_until_ms: int
    height: int
    time_ms: int
    tx_hash: bytes
    tx_index: int
    revocation: Revocation | None = None


_RECORD_DECODER = msgspec.msgpack.Decoder(CredentialRecord)
_ENCODER = msgspec.msgpack.Encoder()


def credential_id(*, issuer: bytes, holder: bytes, cred_type: str, serial: str) -> bytes:
    """SHA-256(domain | issuer | holder | u16 len | type | u16 len | serial), UTF-8."""
    assert len(issuer) == PUBLIC_KEY_BYTES
    assert len(holder) == PUBLIC_KEY_BYTES
    parts = [DOMAIN_CREDENTIAL_ID, issuer, holder]
    for text in (cred_type, serial):
        raw = text.encode("utf-8")
        parts += [len(raw).to_bytes(2, "big"), raw]
    return sha256(b"".join(parts))


def encode_issue(
    *,
    cred_type: str,
    holder: bytes,
    serial: str,
    valid_from_ms: int,
    valid_until_ms: int,
    claims: Mapping[str, str] | None = None,
) -> bytes:
    """Client helper: the body bytes of a `credential.issue` tx."""
    body = IssueBody(
        cred_type=cred_type,
        holder=holder,
        serial=serial,
        valid_from_ms=valid_from_ms,
        valid_until_ms=valid_until_ms,
        claims=dict(claims or {}),
    )
    return _ENCODER.encode(body)


def encode_revoke(credential: bytes, reason: str) -> bytes:
    """Client helper: the body bytes of a `credential.revoke` tx."""
    return _ENCODER.encode(RevokeBody(credential_id=credential, reason=reason))


def load_credential(state: StateView, credential: bytes) -> CredentialRecord | None:
    raw = state.get(ID_PREFIX + credential)
    return None if raw is None else _RECORD_DECODER.decode(raw)


def window_status(valid_from_ms: int, valid_until_ms: int, at_ms: int) -> str:
    """Where `at_ms` falls in [valid_from_ms, valid_until_ms): the window is half-open."""
    if at_ms < valid_from_ms:
        return "not_yet_valid"
    if at_ms >= valid_until_ms:
        return "expired"
    return "valid"


def credential_status(record: CredentialRecord, at_ms: int | None) -> str:
    """ "revoked" once revoked; else the window judged at `at_ms`; "valid" when not judged."""
    if record.revocation is not None:
        return "revoked"
    if at_ms is None:
        return "valid"
    return window_status(record.valid_from_ms, record.valid_until_ms, at_ms)


def record_json(record: CredentialRecord, at_ms: int | None) -> dict[str, Any]:
    revocation = record.revocation
    return {
        "credential_id": record.credential_id.hex(),
        "issuer": record.issuer.hex(),
        "agency": record.agency,
        "cred_type": record.cred_type,
        "holder": record.holder.hex(),
        "serial": record.serial,
        "claims": record.claims,
        "valid_from_ms": record.valid_from_ms,
        "valid_until_ms": record.valid_until_ms,
        "height": record.height,
        "time_ms": record.time_ms,
        "tx_hash": record.tx_hash.hex(),
        "tx_index": record.tx_index,
        "status": credential_status(record, at_ms),
        "judged_at_ms": at_ms,
        "revocation": None
        if revocation is None
        else {
            "reason": revocation.reason,
            "height": revocation.height,
            "time_ms": revocation.time_ms,
            "tx_hash": revocation.tx_hash.hex(),
        },
    }


class CredentialService:
    name = "credential"
    kinds: Mapping[str, KindSpec] = {
        "credential.issue": KindSpec(body_type=IssueBody, role=ROLE),
        "credential.revoke": KindSpec(body_type=RevokeBody, role=ROLE),
    }
    query_paths: tuple[str, ...] = ("credential/get", "credential/holder", "credential/verify")

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, IssueBody):
            return _issue(ctx, body, state)
        assert isinstance(body, RevokeBody), type(body)
        return _revoke(ctx, body, state)

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "credential/get":
            return _query_get(query, state)
        if path == "credential/holder":
            return _query_holder(query, state)
        if path == "credential/verify":
            return _query_verify(query, state)
        raise QueryError(f"unknown path {path!r}")


def _refuse(code: Code, text: str) -> Delivery:
    return Delivery(result=TxResult(code=code, log=text))


def _issue(ctx: TxContext, body: IssueBody, state: Overlay) -> Delivery:
    if body.valid_from_ms >= body.valid_until_ms:
        return _refuse(Code.CREDENTIAL_BAD_WINDOW, "valid_from_ms is not before valid_until_ms")
    if body.valid_until_ms <= ctx.time_ms:
        return _refuse(Code.CREDENTIAL_EXPIRY_PASSED, "valid_until_ms is not after block time")
    ident = credential_id(
        issuer=ctx.signer, holder=body.holder, cred_type=body.cred_type, serial=body.serial
    )
    if state.get(ID_PREFIX + ident) is not None:
        return _refuse(Code.CREDENTIAL_DUPLICATE, "credential already issued")
    agency = agencies.agency_by_key(state, ctx.signer)
    assert agency is not None, "router admitted a signer with no agency"
    record = CredentialRecord(
        credential_id=ident,
        issuer=ctx.signer,
        agency=agency.name,
        cred_type=body.cred_type,
        holder=body.holder,
        serial=body.serial,
        claims=dict(sorted(body.claims.items())),
        valid_from_ms=body.valid_from_ms,
        valid_until_ms=body.valid_until_ms,
        height=ctx.height,
        time_ms=ctx.time_ms,
        tx_hash=ctx.tx_hash,
        tx_index=ctx.tx_index,
    )
    state.put(ID_PREFIX + ident, _ENCODER.encode(record))
    position = ctx.height.to_bytes(8, "big") + ctx.tx_index.to_bytes(4, "big")
    state.put(HOLDER_PREFIX + body.holder + position, ident)
    return Delivery(
        result=TxResult(code=Code.OK, log="issued", data=ident),
        attributes=(
            ("credential.id", ident.hex()),
            ("credential.holder", body.holder.hex()),
            ("credential.issuer", agency.name),
            ("credential.type", body.cred_type),
        ),
    )


def _revoke(ctx: TxContext, body: RevokeBody, state: Overlay) -> Delivery:
    record = load_credential(state, body.credential_id)
    if record is None:
        return _refuse(Code.CREDENTIAL_UNKNOWN, "credential was never issued")
    if not agencies.is_issuing_agency(
        state, ctx.signer, issuer=record.issuer, agency_name=record.agency
    ):
        return _refuse(Code.CREDENTIAL_NOT_ISSUER, "only the issuing agency may revoke")
    if record.revocation is not None:
        return _refuse(Code.CREDENTIAL_ALREADY_REVOKED, "credential is already revoked")
    revoked = msgspec.structs.replace(record, revocation=revocation_for(ctx, body.reason))
    state.put(ID_PREFIX + body.credential_id, _ENCODER.encode(revoked))
    return Delivery(
        result=TxResult(code=Code.OK, log="revoked", data=body.credential_id),
        attributes=(
            ("credential.id", body.credential_id.hex()),
            ("credential.holder", record.holder.hex()),
            ("credential.issuer", record.agency),
        ),
    )


def _query_get(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("id",), optional=("at_ms",))
    ident = params.hex_param(query, "id", size=HASH_BYTES)
    at_ms = params.at_ms_param(query)
    record = load_credential(state, ident)
    if record is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=record_json(record, at_ms))


def _query_verify(query: Mapping[str, str], state: StateView) -> QueryResult:
    """A verifier's yes/no: the credential stands at `at_ms` and, when given, belongs to
    `holder`, is of `cred_type` and was issued by `issuer` (agency name or key)."""
    params.expect_params(
        query, required=("id", "at_ms"), optional=("holder", "cred_type", "issuer")
    )
    ident = params.hex_param(query, "id", size=HASH_BYTES)
    at_ms = params.at_ms_param(query, required=True)
    record = load_credential(state, ident)
    if record is None:
        return QueryResult(found=False, value={"verdict": "unknown", "problems": ["unknown"]})
    problems = []
    status = credential_status(record, at_ms)
    if status != "valid":
        problems.append(status)
    if "holder" in query and params.hex_param(query, "holder", size=32) != record.holder:
        problems.append("wrong_holder")
    if "cred_type" in query and query["cred_type"] != record.cred_type:
        problems.append("wrong_type")
    if "issuer" in query and query["issuer"] not in (record.agency, record.issuer.hex()):
        problems.append("wrong_issuer")
    verdict = "valid" if not problems else problems[0]
    value = {"verdict": verdict, "problems": problems, "credential": record_json(record, at_ms)}
    return QueryResult(found=True, value=value)


def _query_holder(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One page of a holder's credentials in issuance order; `next` is the cursor for
    `after`, null on the last page."""
    params.expect_params(query, required=("holder",), optional=("after", "limit", "at_ms"))
    holder = params.hex_param(query, "holder", size=PUBLIC_KEY_BYTES)
    limit = params.limit_param(query)
    at_ms = params.at_ms_param(query)
    prefix = HOLDER_PREFIX + holder
    start_after = None
    if query.get("after"):
        start_after = prefix + params.hex_param(query, "after", size=_CURSOR_BYTES)
    rows = list(state.scan(prefix, start_after=start_after, limit=limit + 1))
    credentials = []
    for _, ident in rows[:limit]:
        record = load_credential(state, ident)
        assert record is not None, f"holder index points at missing {ident.hex()}"
        credentials.append(record_json(record, at_ms))
    next_cursor = rows[limit - 1][0][len(prefix) :].hex() if len(rows) > limit else None
    value = {"holder": holder.hex(), "credentials": credentials, "next": next_cursor}
    return QueryResult(found=True, value=value)
