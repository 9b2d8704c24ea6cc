"""The document notary: agencies anchor the SHA-256 of a document, and may later revoke it.

Anyone can then ask whether a hash was anchored, by whom, when, and whether it still stands
(docs/SERVICES.md §Notary, docs/services/notary.md). The document itself never touches the
chain. An anchor may carry an expiry (`expires_at_ms`): from then on the document reads
"expired" when a query gives the instant to judge at (`at_ms`), so every node answers the
same. Queries cannot see the latest block time (the Application's query gets committed
state only), so without `at_ms` an expiry is reported but not judged; clients such as
`seoulchain notary verify` pass the latest block time from `status`.

Rules (the router has already checked envelope, role "notary" and body):
    notary.anchor        hash never anchored before (even if revoked) else NOTARY_DUPLICATE_ANCHOR
                         expiry, if any, after the block time         else NOTARY_EXPIRY_PASSED
    notary.anchor_batch  1..30 anchors, all or nothing: no hash twice else NOTARY_BATCH_DUPLICATE
                         then each as notary.anchor, in batch order
    notary.revoke        hash anchored                                else NOTARY_UNKNOWN_DOCUMENT
                         by the signer's own agency (same key, or the
                         same agency name after a key rotation)       else NOTARY_NOT_ISSUER
                         not revoked yet                              else NOTARY_ALREADY_REVOKED

State:
    notary/doc/<32B hash>                                    -> msgpack DocumentRecord
    notary/issuer/<32B issuer key><u64 height><u32 i><u16 j> -> 32B hash (per-agency listing in
                                                                anchoring order; j = position
                                                                in a batch, 0 for one anchor)
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from protocol.crypto import HASH_BYTES
from protocol.results import TxResult
from services import agencies, limits, params
from services.codes import Code
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext
from services.service_fields import Revocation, revocation_for

log = logging.getLogger(__name__)

ROLE = "notary"
DOC_PREFIX = b"notary/doc/"
ISSUER_PREFIX = b"notary/issuer/"
_CURSOR_BYTES = 14  # u64 height | u32 tx index | u16 position in a batch
_CURSOR = struct.Struct(">QIH")
assert _CURSOR.size == _CURSOR_BYTES
# A batch writes two keys per document, within the router's per-tx bound.
BATCH_DOCUMENTS_MAX = 30
assert limits.tx_writes_max >= 2 * BATCH_DOCUMENTS_MAX
# msgspec bounds must fit in an int64; times in ms reach year 292 million before that.
I63_MAX = 2**63 - 1

# Text fields: no C0 control characters or DEL (they break logs and terminals). \Z, not $,
# because $ also matches before a trailing newline.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*\Z"

DocumentHash = Annotated[bytes, msgspec.Meta(min_length=HASH_BYTES, max_length=HASH_BYTES)]
DocType = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
MetadataValue = Annotated[str, msgspec.Meta(max_length=256, pattern=_PRINTABLE)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=16)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=_PRINTABLE)]
ExpiresAtMs = Annotated[int, msgspec.Meta(ge=1, le=I63_MAX)]


class AnchorBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Body of `notary.anchor` (msgpack map), and one item of `notary.anchor_batch`.
    Defaults are omitted when encoding so a body without an expiry keeps its old bytes."""

    document_hash: DocumentHash
    doc_type: DocType
    metadata: Metadata = msgspec.field(default_factory=dict)
    expires_at_ms: ExpiresAtMs | None = None


class AnchorBatchBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `notary.anchor_batch` (msgpack map): 1..30 anchors, all or nothing."""

    documents: Annotated[list[AnchorBody], msgspec.Meta(min_length=1, max_length=30)]


class RevokeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `notary.revoke` (msgpack map)."""

    document_hash: DocumentHash
    reason: Reason


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
    expires_at_ms: int | None = None


_RECORD_DECODER = msgspec.msgpack.Decoder(DocumentRecord)
_ENCODER = msgspec.msgpack.Encoder()
# Encodes a new record with its metadata keys sorted (msgspec sorts dict keys as Python's
# sorted() does), without building a sorted copy of the metadata first (~0.4 us per anchor).
_NEW_RECORD_ENCODER = msgspec.msgpack.Encoder(order="deterministic")


def encode_anchor(
    document_hash: bytes,
    doc_type: str,
    metadata: Mapping[str, str] | None = None,
    *,
    expires_at_ms: int | None = None,
) -> bytes:
    """Client helper: the body bytes of a `notary.anchor` tx."""
    return _ENCODER.encode(
        AnchorBody(
            document_hash=document_hash,
            doc_type=doc_type,
            metadata=dict(metadata or {}),
            expires_at_ms=expires_at_ms,
        )
    )


def encode_anchor_batch(documents: list[AnchorBody]) -> bytes:
    """Client helper: the body bytes of a `notary.anchor_batch` tx."""
    return _ENCODER.encode(AnchorBatchBody(documents=documents))


def encode_revoke(document_hash: bytes, reason: str) -> bytes:
    """Client helper: the body bytes of a `notary.revoke` tx."""
    return _ENCODER.encode(RevokeBody(document_hash=document_hash, reason=reason))


def load_document(state: StateView, document_hash: bytes) -> DocumentRecord | None:
    raw = state.get(DOC_PREFIX + document_hash)
    return None if raw is None else _RECORD_DECODER.decode(raw)


def document_status(record: DocumentRecord, at_ms: int) -> str:
    """ "revoked" once revoked (whatever `at_ms`), else "expired" from its expiry on,
    else "valid"."""
    if record.revocation is not None:
        return "revoked"
    if record.expires_at_ms is not None and at_ms >= record.expires_at_ms:
        return "expired"
    return "valid"


def record_json(record: DocumentRecord, at_ms: int | None = None) -> dict[str, Any]:
    """The JSON form. `expires_at_ms` and `judged_at_ms` appear only when the anchor set
    an expiry (older records keep their exact form); without `at_ms` an expiry is not
    judged (status is "valid" or "revoked", `judged_at_ms` null)."""
    revocation = record.revocation
    value = {
        "document_hash": record.document_hash.hex(),
        "issuer": record.issuer.hex(),
        "agency": record.agency,
        "doc_type": record.doc_type,
        "metadata": record.metadata,
        "height": record.height,
        "time_ms": record.time_ms,
        "tx_hash": record.tx_hash.hex(),
        "tx_index": record.tx_index,
        "status": document_status(record, -1 if at_ms is None else at_ms),
        "revocation": None
        if revocation is None
        else {
            "reason": revocation.reason,
            "height": revocation.height,
            "time_ms": revocation.time_ms,
            "tx_hash": revocation.tx_hash.hex(),
        },
    }
    if record.expires_at_ms is not None:
        value["expires_at_ms"] = record.expires_at_ms
        value["judged_at_ms"] = at_ms
    return value


class NotaryService:
    name = "notary"
    kinds: Mapping[str, KindSpec] = {
        "notary.anchor": KindSpec(body_type=AnchorBody, role=ROLE),
        "notary.anchor_batch": KindSpec(body_type=AnchorBatchBody, role=ROLE),
        "notary.revoke": KindSpec(body_type=RevokeBody, role=ROLE),
    }
    query_paths: tuple[str, ...] = ("notary/document", "notary/issuer")

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, AnchorBody):
            return self._anchor(ctx, body, state)
        if isinstance(body, AnchorBatchBody):
            return self._anchor_batch(ctx, body, state)
        assert isinstance(body, RevokeBody), type(body)
        return self._revoke(ctx, body, state)

    def _anchor(self, ctx: TxContext, body: AnchorBody, state: Overlay) -> Delivery:
        refusal = _anchor_refusal(ctx, body, state)
        if refusal is not None:
            return refusal
        agency = _put_anchor(ctx, body, state, position_in_batch=0)
        return Delivery(
            result=TxResult(code=Code.OK, log="anchored", data=body.document_hash),
            attributes=(
                ("notary.document", body.document_hash.hex()),
                ("notary.issuer", agency),
                ("notary.doc_type", body.doc_type),
            ),
        )

    def _anchor_batch(self, ctx: TxContext, body: AnchorBatchBody, state: Overlay) -> Delivery:
        """All or nothing: every item is checked before anything is written, and a refusal
        drops the tx overlay anyway."""
        assert len(body.documents) <= BATCH_DOCUMENTS_MAX
        hashes = [item.document_hash for item in body.documents]
        if len(set(hashes)) != len(hashes):
            return _refuse(Code.NOTARY_BATCH_DUPLICATE, "batch names a document hash twice")
        for item in body.documents:
            refusal = _anchor_refusal(ctx, item, state)
            if refusal is not None:
                return refusal
        agency = ""
        for position_in_batch, item in enumerate(body.documents):
            agency = _put_anchor(ctx, item, state, position_in_batch=position_in_batch)
        attributes = [("notary.issuer", agency), ("notary.batch_size", str(len(hashes)))]
        attributes.extend(("notary.document", document_hash.hex()) for document_hash in hashes)
        return Delivery(
            result=TxResult(code=Code.OK, log="anchored batch", data=b"".join(hashes)),
            attributes=tuple(attributes),
        )

    def _revoke(self, ctx: TxContext, body: RevokeBody, state: Overlay) -> Delivery:
        record = load_document(state, body.document_hash)
        if record is None:
            return _refuse(Code.NOTARY_UNKNOWN_DOCUMENT, "document hash was never anchored")
        if not agencies.is_issuing_agency(
            state, ctx.signer, issuer=record.issuer, agency_name=record.agency
        ):
            return _refuse(Code.NOTARY_NOT_ISSUER, "only the issuing agency may revoke")
        if record.revocation is not None:
            return _refuse(Code.NOTARY_ALREADY_REVOKED, "document is already revoked")
        revoked = msgspec.structs.replace(record, revocation=revocation_for(ctx, body.reason))
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


def _anchor_refusal(ctx: TxContext, body: AnchorBody, state: Overlay) -> Delivery | None:
    if state.get(DOC_PREFIX + body.document_hash) is not None:
        return _refuse(Code.NOTARY_DUPLICATE_ANCHOR, "document hash already anchored")
    if body.expires_at_ms is not None and body.expires_at_ms <= ctx.time_ms:
        return _refuse(Code.NOTARY_EXPIRY_PASSED, "expiry is not after the block time")
    return None


def _put_anchor(ctx: TxContext, body: AnchorBody, state: Overlay, *, position_in_batch: int) -> str:
    """Write one anchored document and its issuer-listing row; the agency's name."""
    agency = agencies.agency_by_key(state, ctx.signer)
    assert agency is not None, "router admitted a signer with no agency"
    record = DocumentRecord(
        document_hash=body.document_hash,
        issuer=ctx.signer,
        agency=agency.name,
        doc_type=body.doc_type,
        metadata=body.metadata,  # sorted by the encoder
        height=ctx.height,
        time_ms=ctx.time_ms,
        tx_hash=ctx.tx_hash,
        tx_index=ctx.tx_index,
        expires_at_ms=body.expires_at_ms,
    )
    state.put(DOC_PREFIX + body.document_hash, _NEW_RECORD_ENCODER.encode(record))
    position = _CURSOR.pack(ctx.height, ctx.tx_index, position_in_batch)
    state.put(ISSUER_PREFIX + ctx.signer + position, body.document_hash)
    return agency.name


def _refuse(code: Code, text: str) -> Delivery:
    return Delivery(result=TxResult(code=code, log=text))


def _query_document(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("hash",), optional=("at_ms",))
    document_hash = params.hex_param(query, "hash", size=HASH_BYTES)
    at_ms = params.at_ms_param(query)
    record = load_document(state, document_hash)
    if record is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=record_json(record, at_ms))


def _query_issuer(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One page of an agency's documents in anchoring order. `next` is the cursor to pass
    as `after` for the following page, or null on the last page."""
    params.expect_params(query, required=("agency",), optional=("after", "limit", "at_ms"))
    limit = params.limit_param(query)
    at_ms = params.at_ms_param(query)
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
        documents.append(record_json(record, at_ms))
    next_cursor = rows[limit - 1][0][len(prefix) :].hex() if len(rows) > limit else None
    value = {"agency": agencies.agency_json(agency), "documents": documents, "next": next_cursor}
    return QueryResult(found=True, value=value)
