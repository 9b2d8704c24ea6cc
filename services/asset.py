"""Asset history (used-car records): a time-ordered, append-only history per asset id.

Registrars (agencies with role `asset_registrar`) register an asset with its owner's public
key and append events — inspection (with odometer reading), accident, repair. Ownership
changes by `asset.transfer`, signed either by the current owner (their consent: the tx
names the new owner) or by a registrar (a court order, inheritance, a dealer's paperwork).
The odometer never goes backwards: every reading must be >= the last one recorded. Each
event keeps the height, tx index and tx hash of the tx that wrote it, so `tx` with
prove=true gives anyone its proof (docs/services/asset.md).

Rules, after the router's generic checks:
    asset.register  id not registered                        else ASSET_ALREADY_REGISTERED
    asset.record    id registered                            else ASSET_UNKNOWN
                    inspection carries odometer_km           else ASSET_ODOMETER_REQUIRED
                    reading >= last reading                  else ASSET_ODOMETER_BACKWARDS
                    fewer than events_per_asset_max events   else ASSET_HISTORY_FULL
    asset.transfer  id registered                            else ASSET_UNKNOWN
                    signer is the owner or a registrar       else ASSET_NOT_OWNER
                    new owner differs from the owner         else ASSET_SAME_OWNER
                    reading >= last reading, history room    (as asset.record)

State:
    asset/a/<u8 len><id>                  -> msgpack AssetRecord
    asset/e/<u8 len><id><u32 seq>         -> msgpack AssetEvent   (seq 0 = registration)
    asset/o/<32B owner><u8 len><id>       -> b""                  (assets by owner)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from services import agencies, params
from services.codes import Code
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext
from services.service_fields import (
    ENCODER,
    Counter,
    Note,
    PublicKey,
    RecordId,
    accept,
    check_page_params,
    id_key,
    id_param,
    key_param,
    page,
    refuse,
)

log = logging.getLogger(__name__)

ROLE = "asset_registrar"
ASSET_PREFIX = b"asset/a/"
EVENT_PREFIX = b"asset/e/"
OWNER_PREFIX = b"asset/o/"
_SEQ_BYTES = 4
# A car sees a few events a year; this bound keeps one asset's history pageable forever.
events_per_asset_max = 100_000

EventType = Literal["inspection", "accident", "repair"]


class RegisterBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `asset.register` (msgpack map)."""

    asset_id: RecordId
    owner: PublicKey
    description: Note = ""
    odometer_km: Counter = 0


class RecordBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `asset.record` (msgpack map)."""

    asset_id: RecordId
    event: EventType
    description: Note = ""
    odometer_km: Counter | None = None


class TransferBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `asset.transfer` (msgpack map)."""

    asset_id: RecordId
    new_owner: PublicKey
    description: Note = ""
    odometer_km: Counter | None = None


class AssetRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The asset's current facts; its events hold the history."""

    asset_id: str
    owner: bytes
    odometer_km: int
    events: int  # count; the next event's seq
    registered_height: int
    registrar: bytes


class AssetEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: int
    event: str  # "registration", "inspection", "accident", "repair", "transfer"
    description: str
    odometer_km: int | None
    owner: bytes  # the owner after this event
    previous_owner: bytes | None  # set on transfers only
    signer: bytes
    height: int
    time_ms: int
    tx_index: int
    tx_hash: bytes


_ASSET_DECODER = msgspec.msgpack.Decoder(AssetRecord)
_EVENT_DECODER = msgspec.msgpack.Decoder(AssetEvent)


def encode_register(
    asset_id: str, owner: bytes, *, description: str = "", odometer_km: int = 0
) -> bytes:
    """Client helper: body bytes of `asset.register` (validated as the chain would)."""
    body = RegisterBody(
        asset_id=asset_id, owner=owner, description=description, odometer_km=odometer_km
    )
    return _validated(body, RegisterBody)


def encode_record(
    asset_id: str, event: str, *, description: str = "", odometer_km: int | None = None
) -> bytes:
    body: dict[str, Any] = {"asset_id": asset_id, "event": event, "description": description}
    if odometer_km is not None:
        body["odometer_km"] = odometer_km
    return _validated(body, RecordBody)


def encode_transfer(
    asset_id: str, new_owner: bytes, *, description: str = "", odometer_km: int | None = None
) -> bytes:
    body: dict[str, Any] = {
        "asset_id": asset_id,
        "new_owner": new_owner,
        "description": description,
    }
    if odometer_km is not None:
        body["odometer_km"] = odometer_km
    return _validated(body, TransferBody)


def _validated(body: object, body_type: type[msgspec.Struct]) -> bytes:
    """Encode, then decode with the chain's own decoder: a bad field raises
    msgspec.ValidationError (a ValueError) here, on the client, not on chain."""
    raw = ENCODER.encode(body)
    msgspec.msgpack.decode(raw, type=body_type)
    return raw


def load_asset(state: StateView, asset_id: str) -> AssetRecord | None:
    raw = state.get(ASSET_PREFIX + id_key(asset_id))
    return None if raw is None else _ASSET_DECODER.decode(raw)


class AssetService:
    name = "asset"
    kinds: Mapping[str, KindSpec] = {
        "asset.register": KindSpec(body_type=RegisterBody, role=ROLE),
        "asset.record": KindSpec(body_type=RecordBody, role=ROLE),
        # Owners are citizens' keys, not agencies: the service checks who signed.
        "asset.transfer": KindSpec(body_type=TransferBody, role=None),
    }
    query_paths: tuple[str, ...] = ("asset/get", "asset/history", "asset/owner")

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, RegisterBody):
            return _register(ctx, body, state)
        if isinstance(body, RecordBody):
            return _record(ctx, body, state)
        assert isinstance(body, TransferBody), type(body)
        return _transfer(ctx, body, state)

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "asset/get":
            return _query_get(query, state)
        if path == "asset/history":
            return _query_history(query, state)
        if path == "asset/owner":
            return _query_owner(query, state)
        raise QueryError(f"unknown path {path!r}")


def _register(ctx: TxContext, body: RegisterBody, state: Overlay) -> Delivery:
    if load_asset(state, body.asset_id) is not None:
        return refuse(Code.ASSET_ALREADY_REGISTERED, "asset id already registered")
    asset = AssetRecord(
        asset_id=body.asset_id,
        owner=body.owner,
        odometer_km=body.odometer_km,
        events=0,
        registered_height=ctx.height,
        registrar=ctx.signer,
    )
    state.put(OWNER_PREFIX + body.owner + id_key(body.asset_id), b"")
    return _append(ctx, state, asset, "registration", body.description, body.odometer_km)


def _record(ctx: TxContext, body: RecordBody, state: Overlay) -> Delivery:
    asset = load_asset(state, body.asset_id)
    if asset is None:
        return refuse(Code.ASSET_UNKNOWN, "asset id not registered")
    if body.event == "inspection" and body.odometer_km is None:
        return refuse(Code.ASSET_ODOMETER_REQUIRED, "an inspection must read the odometer")
    refused = _odometer_or_room_refused(asset, body.odometer_km)
    if refused is not None:
        return refused
    return _append(ctx, state, asset, body.event, body.description, body.odometer_km)


def _transfer(ctx: TxContext, body: TransferBody, state: Overlay) -> Delivery:
    asset = load_asset(state, body.asset_id)
    if asset is None:
        return refuse(Code.ASSET_UNKNOWN, "asset id not registered")
    if ctx.signer != asset.owner and not agencies.has_role(state, ctx.signer, ROLE):
        return refuse(Code.ASSET_NOT_OWNER, "only the owner or a registrar may transfer")
    if body.new_owner == asset.owner:
        return refuse(Code.ASSET_SAME_OWNER, "new owner is the current owner")
    refused = _odometer_or_room_refused(asset, body.odometer_km)
    if refused is not None:
        return refused
    state.delete(OWNER_PREFIX + asset.owner + id_key(asset.asset_id))
    state.put(OWNER_PREFIX + body.new_owner + id_key(asset.asset_id), b"")
    moved = msgspec.structs.replace(asset, owner=body.new_owner)
    return _append(
        ctx, state, moved, "transfer", body.description, body.odometer_km, previous=asset.owner
    )


def _odometer_or_room_refused(asset: AssetRecord, odometer_km: int | None) -> Delivery | None:
    if odometer_km is not None and odometer_km < asset.odometer_km:
        return refuse(Code.ASSET_ODOMETER_BACKWARDS, "odometer reading below the last one")
    if asset.events >= events_per_asset_max:
        return refuse(Code.ASSET_HISTORY_FULL, "asset history is full")
    return None


def _append(
    ctx: TxContext,
    state: Overlay,
    asset: AssetRecord,
    event: str,
    description: str,
    odometer_km: int | None,
    *,
    previous: bytes | None = None,
) -> Delivery:
    """Write the event at the asset's next seq and the updated asset record."""
    seq = asset.events
    assert seq < events_per_asset_max
    record = AssetEvent(
        seq=seq,
        event=event,
        description=description,
        odometer_km=odometer_km,
        owner=asset.owner,
        previous_owner=previous,
        signer=ctx.signer,
        height=ctx.height,
        time_ms=ctx.time_ms,
        tx_index=ctx.tx_index,
        tx_hash=ctx.tx_hash,
    )
    reading = asset.odometer_km if odometer_km is None else odometer_km
    assert reading >= asset.odometer_km, "odometer went backwards past the rule check"
    updated = msgspec.structs.replace(asset, events=seq + 1, odometer_km=reading)
    key = id_key(asset.asset_id)
    state.put(EVENT_PREFIX + key + seq.to_bytes(_SEQ_BYTES, "big"), ENCODER.encode(record))
    state.put(ASSET_PREFIX + key, ENCODER.encode(updated))
    attributes = (
        ("asset.id", asset.asset_id),
        ("asset.event", event),
        ("asset.owner", asset.owner.hex()),
    )
    return accept(event, attributes, data=seq.to_bytes(_SEQ_BYTES, "big"))


def asset_json(asset: AssetRecord) -> dict[str, Any]:
    return {
        "asset_id": asset.asset_id,
        "owner": asset.owner.hex(),
        "odometer_km": asset.odometer_km,
        "events": asset.events,
        "registered_height": asset.registered_height,
        "registrar": asset.registrar.hex(),
    }


def event_json(event: AssetEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "event": event.event,
        "description": event.description,
        "odometer_km": event.odometer_km,
        "owner": event.owner.hex(),
        "previous_owner": None if event.previous_owner is None else event.previous_owner.hex(),
        "signer": event.signer.hex(),
        "height": event.height,
        "time_ms": event.time_ms,
        "tx_index": event.tx_index,
        "tx_hash": event.tx_hash.hex(),
    }


def _query_get(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("id",))
    asset = load_asset(state, id_param(query, "id"))
    if asset is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=asset_json(asset))


def _query_history(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One page of an asset's events, oldest first; `next` is the cursor for `after`."""
    params.expect_params(query, required=("id",), optional=("after", "limit"))
    check_page_params(query, cursor_bytes=_SEQ_BYTES)
    asset = load_asset(state, id_param(query, "id"))
    if asset is None:
        return QueryResult(found=False)
    events, next_cursor = page(
        state,
        EVENT_PREFIX + id_key(asset.asset_id),
        query,
        cursor_bytes=_SEQ_BYTES,
        render=lambda _, raw: event_json(_EVENT_DECODER.decode(raw)),
    )
    value = {"asset": asset_json(asset), "events": events, "next": next_cursor}
    return QueryResult(found=True, value=value)


def _query_owner(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One page of the asset ids an owner holds now, in id-key order."""
    params.expect_params(query, required=("owner",), optional=("after", "limit"))
    owner = key_param(query, "owner")
    prefix = OWNER_PREFIX + owner
    limit = params.limit_param(query)
    start_after = None
    if query.get("after"):
        start_after = prefix + id_key(id_param(query, "after"))
    rows = list(state.scan(prefix, start_after=start_after, limit=limit + 1))
    ids = [key[len(prefix) + 1 :].decode("ascii") for key, _ in rows[:limit]]
    next_cursor = ids[-1] if len(rows) > limit else None
    return QueryResult(found=True, value={"owner": owner.hex(), "assets": ids, "next": next_cursor})
