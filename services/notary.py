"""The document notary: agencies anchor the SHA-256 of a document, and may later revoke it.

Anyone can then ask whether a hash was anchored, by whom, when, and whether it still stands
(docs/SERVICES.md §Notary). The document itself never touches the chain.

Rules (the router has already checked envelope, role "notary" and body):
    notary.anchor  hash never anchored before (even if revoked)  else NOTARY_DUPLICATE_ANCHOR
    notary.revoke  hash anchored                                 else NOTARY_UNKNOWN_DOCUMENT
                   by the signer's own agency                    else NOTARY_NOT_ISSUER
                   not revoked yet                               else NOTARY_ALREADY_REVOKED

State:
    notary/doc/<32B hash>                             -> msgpack DocumentRecord
    notary/issuer/<32B issuer key><u64 height><u32 i> -> 32B hash   (per-agency listing,
                                                                     in anchoring order)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from protocol.crypto import HASH_BYTES
from protocol.results import TxResult
from services import agencies, params
from services.codes import Code
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext

log = logging.getLogger(__name__)

ROLE = "notary"
DOC_PREFIX = b"notary/doc/"
ISSUER_PREFIX = b"notary/issuer/"
_CURSOR_BYTES = 12  # u64 height | u32 tx index

# Text fields: no C0 control characters or DEL (they break logs and terminals). \Z, not $,
# because $ also matches before a trailing newline.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*\Z"

DocumentHash = Annotated[bytes, msgspec.Meta(min_length=HASH_BYTES, max_length=HASH_BYTES)]
DocType = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
MetadataValue = Annotated[str, msgspec.Meta(max_length=256, pattern=_PRINTABLE)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=16)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=_PRINTABLE)]


class AnchorBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `notary.anchor` (msgpack map)."""

    document_hash: DocumentHash
    doc_type: DocType
    metadata: Metadata = msgspec.field(default_factory=dict)


class RevokeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `notary.revoke` (msgpack map)."""

    document_hash: DocumentHash
    reason: Reason


class Revocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: str
    height: int
    time_ms: int
    tx_hash: bytes


class DocumentRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the chain keeps per anchored hash. Encoded with every field present, in this
    order, metadata keys sorted: one byte string per record, on every node."""

    document_hash: bytes
    issuer: bytes  # the anchoring agency's public key
    agency: str  # its name at anchoring time
    doc_type: str
    metadata: dict[str, str]
    height: int
    time_ms: int
    tx_hash: bytes
    tx_index: int
    revocation: Revocation | None = None


_RECORD_DECODER = msgspec.msgpack.Decoder(DocumentRecord)
_ENCODER = msgspec.msgpack.Encoder()


def encode_anchor(
    document_hash: bytes, doc_type: str, metadata: Mapping[str, str] | None = None
) -> bytes:
    """Client helper: the body bytes of a `notary.anchor` tx."""
    return _ENCODER.encode(
        AnchorBody(document_hash=document_hash, doc_type=doc_type, metadata=dict(metadata or {}))
    )


def encode_revoke(document_hash: bytes, reason: str) -> bytes:
    """Client helper: the body bytes of a `notary.revoke` tx."""
    return _ENCODER.encode(RevokeBody(document_hash=document_hash, reason=reason))


def load_document(state: StateView, document_hash: bytes) -> DocumentRecord | None:
    raw = state.get(DOC_PREFIX + document_hash)
    return None if raw is None else _RECORD_DECODER.decode(raw)


def record_json(record: DocumentRecord) -> dict[str, Any]:
    revocation = record.revocation
    return {
        "document_hash": record.document_hash.hex(),
        "issuer": record.issuer.hex(),
        "agency": record.agency,
        "doc_type": record.doc_type,
        "metadata": record.metadata,
        "height": record.height,
        "time_ms": record.time_ms,
        "tx_hash": record.tx_hash.hex(),
        "tx_index": record.tx_index,
        "status": "valid" if revocation is None else "revoked",
        "revocation": None
        if revocation is None
        else {
            "reason": revocation.reason,
            "height": revocation.height,
            "time_ms": revocation.time_ms,
            "tx_hash": revocation.tx_hash.hex(),
        },
    }


class NotaryService:
    name = "notary"
    kinds: Mapping[str, KindSpec] = {
        "notary.anchor": KindSpec(body_type=AnchorBody, role=ROLE),
        "notary.revoke": KindSpec(body_type=RevokeBody, role=ROLE),
    }
    query_paths: tuple[str, ...] = ("notary/document", "notary/issuer")

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, AnchorBody):
            return self._anchor(ctx, body, state)
        assert isinstance(body, RevokeBody), type(body)
        return self._revoke(ctx, body, state)

    def _anchor(self, ctx: TxContext, body: AnchorBody, state: Overlay) -> Delivery:
        if state.get(DOC_PREFIX + body.document_hash) is not None:
            return _refuse(Code.NOTARY_DUPLICATE_ANCHOR, "document hash already anchored")
        agency = agencies.agency_by_key(state, ctx.signer)
        assert agency is not None, "router admitted a signer with no agency"
        record = DocumentRecord(
            document_hash=body.document_hash,
            issuer=ctx.signer,
            agency=agency.name,
            doc_type=body.doc_type,
            metadata=dict(sorted(body.metadata.items())),
            height=ctx.height,
            time_ms=ctx.time_ms,
            tx_hash=ctx.tx_hash,
            tx_index=ctx.tx_index,
        )
        state.put(DOC_PREFIX + body.document_hash, _ENCODER.encode(record))
        position = ctx.height.to_bytes(8, "big") + ctx.tx_index.to_bytes(4, "big")
        state.put(ISSUER_PREFIX + ctx.signer + position, body.document_hash)
        return Delivery(
            result=TxResult(code=Code.OK, log="anchored", data=body.document_hash),
            attributes=(
                ("notary.document", body.document_hash.hex()),
                ("notary.issuer", agency.name),
                ("notary.doc_type", body.doc_type),
            ),
        )

    def _revoke(self, ctx: TxContext, body: RevokeBody, state: Overlay) -> Delivery:
        record = load_document(state, body.document_hash)
        if record is None:
            return _refuse(Code.NOTARY_UNKNOWN_DOCUMENT, "document hash was never anchored")
        if record.issuer != ctx.signer:
            return _refuse(Code.NOTARY_NOT_ISSUER, "only the issuing agency may revoke")
        if record.revocation is not None:
            return _refuse(Code.NOTARY_ALREADY_REVOKED, "document is already revoked")
        revocation = Revocation(
            reason=body.reason, height=ctx.height, time_ms=ctx.time_ms, tx_hash=ctx.tx_hash
        )
        revoked = msgspec.structs.replace(record, revocation=revocation)
        state.put(DOC_PREFIX + body.document_hash, _ENCODER.encode(revoked))
        return Delivery(
            result=TxResult(code=Code.OK, log="revoked", data=body.document_hash),
            attributes=(
                ("notary.document", body.document_hash.hex()),
                ("notary.issuer", record.agency),
            ),
        )

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "notary/document":
            return _query_document(query, state)
        if path == "notary/issuer":
            return _query_issuer(query, state)
        raise QueryError(f"unknown path {path!r}")


def _refuse(code: Code, text: str) -> Delivery:
    return Delivery(result=TxResult(code=code, log=text))


def _query_document(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("hash",))
    document_hash = params.hex_param(query, "hash", size=HASH_BYTES)
    record = load_document(state, document_hash)
    if record is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=record_json(record))


def _query_issuer(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One page of an agency's documents in anchoring order. `next` is the cursor to pass
    as `after` for the following page, or null on the last page."""
    params.expect_params(query, required=("agency",), optional=("after", "limit"))
    limit = params.limit_param(query)
    agency = agencies.resolve_agency(state, query["agency"])
    if agency is None:
        return QueryResult(found=False)
    prefix = ISSUER_PREFIX + agency.public_key
    start_after = None
    if query.get("after"):
        start_after = prefix + params.hex_param(query, "after", size=_CURSOR_BYTES)
    rows = list(state.scan(prefix, start_after=start_after, limit=limit + 1))
    documents = []
    for _, document_hash in rows[:limit]:
        record = load_document(state, document_hash)
        assert record is not None, f"issuer index points at missing {document_hash.hex()}"
        documents.append(record_json(record))
    next_cursor = rows[limit - 1][0][len(prefix) :].hex() if len(rows) > limit else None
    value = {"agency": agencies.agency_json(agency), "documents": documents, "next": next_cursor}
    return QueryResult(found=True, value=value)
