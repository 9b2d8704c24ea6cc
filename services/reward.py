"""Activity rewards (eco-mileage): points awarded for activity records, transferred between
citizens, and redeemed at participating agencies.

Issuers (agencies with role `reward_issuer`: a utility's meter gateway, a district office)
award points to a holder's public key for one activity record id; each record id is counted
once, chain-wide, whoever reports it. Holders move points with `reward.transfer` and spend
them with `reward.redeem`, both signed by the holder: a redeem names the merchant (an
agency with role `reward_merchant`), so no merchant can take points without the holder's
signature. Redeemed points leave circulation.

Supply (docs/services/reward.md §Supply): the service keeps

    supply == awarded - redeemed       (asserted on every change)
           == sum of every holder's balance   (checked by the model test)

and, for every height at which it changed, a snapshot under a key ordered newest first, so
`reward/supply?height=H` answers with the supply as it stood at H with one bounded scan.

Rules, after the router's generic checks:
    reward.award     record id never counted                     else REWARD_DUPLICATE_RECORD
                     supply + points <= u64 max                  else REWARD_OVERFLOW
    reward.transfer  to != signer                                else REWARD_SELF_TRANSFER
                     points <= signer's balance                  else REWARD_INSUFFICIENT_POINTS
    reward.redeem    merchant is an agency with reward_merchant  else REWARD_NOT_MERCHANT
                     points <= signer's balance                  else REWARD_INSUFFICIENT_POINTS

State:
    reward/b/<32B holder>              -> u64 balance (big-endian); absent = 0
    reward/r/<u8 len><record id>       -> msgpack AwardRecord
    reward/s                           -> msgpack Supply (current)
    reward/h/<u64 (2^64-1 - height)>   -> msgpack Supply (as it stood after that height)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from services import agencies, params
from services.codes import Code
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext
from services.service_fields import (
    ENCODER,
    PRINTABLE,
    U64_MAX,
    Amount,
    Note,
    PublicKey,
    RecordId,
    accept,
    id_key,
    id_param,
    key_param,
    refuse,
    u64_param,
)

log = logging.getLogger(__name__)

ISSUER_ROLE = "reward_issuer"
MERCHANT_ROLE = "reward_merchant"
BALANCE_PREFIX = b"reward/b/"
RECORD_PREFIX = b"reward/r/"
SUPPLY_KEY = b"reward/s"
HISTORY_PREFIX = b"reward/h/"

Activity = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=PRINTABLE)]


class AwardBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `reward.award`: points for one activity record, to a holder."""

    record_id: RecordId
    holder: PublicKey
    points: Amount
    activity: Activity
    memo: Note = ""


class TransferBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `reward.transfer`: the signer (holder) sends points to another key."""

    to: PublicKey
    points: Amount
    memo: Note = ""


class RedeemBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `reward.redeem`: the signer (holder) spends points at a merchant agency."""

    merchant: PublicKey
    points: Amount
    memo: Note = ""


class AwardRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    record_id: str
    holder: bytes
    points: int
    activity: str
    memo: str
    issuer: bytes
    height: int
    time_ms: int
    tx_index: int
    tx_hash: bytes


class Supply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    awarded: int
    redeemed: int
    supply: int
    height: int  # the height of the last change

    def consistent(self) -> bool:
        return 0 <= self.supply == self.awarded - self.redeemed


_RECORD_DECODER = msgspec.msgpack.Decoder(AwardRecord)
_SUPPLY_DECODER = msgspec.msgpack.Decoder(Supply)
_NO_SUPPLY = Supply(awarded=0, redeemed=0, supply=0, height=0)


def _validated(body: msgspec.Struct) -> bytes:
    raw = ENCODER.encode(body)
    msgspec.msgpack.decode(raw, type=type(body))  # a bad field raises here, on the client
    return raw


def encode_award(
    record_id: str, holder: bytes, points: int, activity: str, memo: str = ""
) -> bytes:
    body = AwardBody(
        record_id=record_id, holder=holder, points=points, activity=activity, memo=memo
    )
    return _validated(body)


def encode_transfer(to: bytes, points: int, memo: str = "") -> bytes:
    return _validated(TransferBody(to=to, points=points, memo=memo))


def encode_redeem(merchant: bytes, points: int, memo: str = "") -> bytes:
    return _validated(RedeemBody(merchant=merchant, points=points, memo=memo))


def balance_of(state: StateView, holder: bytes) -> int:
    raw = state.get(BALANCE_PREFIX + holder)
    return 0 if raw is None else int.from_bytes(raw, "big")


def current_supply(state: StateView) -> Supply:
    raw = state.get(SUPPLY_KEY)
    return _NO_SUPPLY if raw is None else _SUPPLY_DECODER.decode(raw)


def supply_at(state: StateView, height: int) -> Supply:
    """The supply as it stood after block `height`: the newest snapshot at or below it."""
    assert 0 <= height <= U64_MAX
    start_after = None if height == U64_MAX else _history_key(height + 1)
    for _, raw in state.scan(HISTORY_PREFIX, start_after=start_after, limit=1):
        return _SUPPLY_DECODER.decode(raw)
    return _NO_SUPPLY


def _history_key(height: int) -> bytes:
    return HISTORY_PREFIX + (U64_MAX - height).to_bytes(8, "big")


class RewardService:
    name = "reward"
    kinds: Mapping[str, KindSpec] = {
        "reward.award": KindSpec(body_type=AwardBody, role=ISSUER_ROLE),
        # Holders are citizens' keys; the service checks balances and the merchant.
        "reward.transfer": KindSpec(body_type=TransferBody, role=None),
        "reward.redeem": KindSpec(body_type=RedeemBody, role=None),
    }
    query_paths: tuple[str, ...] = ("reward/balance", "reward/record", "reward/supply")
    # Roles this service checks that no tx kind requires of its signer (a merchant is named
    # in a redeem, not signing it); `seoulchain init/testnet` grant them like the others.
    extra_roles: tuple[str, ...] = (MERCHANT_ROLE,)

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, AwardBody):
            return _award(ctx, body, state)
        if isinstance(body, TransferBody):
            return _transfer(ctx, body, state)
        assert isinstance(body, RedeemBody), type(body)
        return _redeem(ctx, body, state)

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "reward/balance":
            params.expect_params(query, required=("holder",))
            holder = key_param(query, "holder")
            value = {"holder": holder.hex(), "points": balance_of(state, holder)}
            return QueryResult(found=True, value=value)
        if path == "reward/record":
            return _query_record(query, state)
        if path == "reward/supply":
            return _query_supply(query, state)
        raise QueryError(f"unknown path {path!r}")


def _award(ctx: TxContext, body: AwardBody, state: Overlay) -> Delivery:
    record_key = RECORD_PREFIX + id_key(body.record_id)
    if state.get(record_key) is not None:
        return refuse(Code.REWARD_DUPLICATE_RECORD, "activity record already counted")
    supply = current_supply(state)
    if supply.awarded + body.points > U64_MAX:
        return refuse(Code.REWARD_OVERFLOW, "points awarded would exceed u64")
    # Every balance is part of the supply, so no balance can overflow once awarded can't.
    record = AwardRecord(
        record_id=body.record_id,
        holder=body.holder,
        points=body.points,
        activity=body.activity,
        memo=body.memo,
        issuer=ctx.signer,
        height=ctx.height,
        time_ms=ctx.time_ms,
        tx_index=ctx.tx_index,
        tx_hash=ctx.tx_hash,
    )
    state.put(record_key, ENCODER.encode(record))
    _set_balance(state, body.holder, balance_of(state, body.holder) + body.points)
    _set_supply(
        state,
        ctx.height,
        awarded=supply.awarded + body.points,
        redeemed=supply.redeemed,
    )
    attributes = (
        ("reward.record", body.record_id),
        ("reward.holder", body.holder.hex()),
        ("reward.points", str(body.points)),
        ("reward.activity", body.activity),
    )
    return accept("awarded", attributes)


def _transfer(ctx: TxContext, body: TransferBody, state: Overlay) -> Delivery:
    if body.to == ctx.signer:
        return refuse(Code.REWARD_SELF_TRANSFER, "transfer to oneself")
    balance = balance_of(state, ctx.signer)
    if body.points > balance:
        return refuse(Code.REWARD_INSUFFICIENT_POINTS, "points exceed the holder's balance")
    _set_balance(state, ctx.signer, balance - body.points)
    _set_balance(state, body.to, balance_of(state, body.to) + body.points)
    attributes = (
        ("reward.holder", ctx.signer.hex()),
        ("reward.to", body.to.hex()),
        ("reward.points", str(body.points)),
    )
    return accept("transferred", attributes)


def _redeem(ctx: TxContext, body: RedeemBody, state: Overlay) -> Delivery:
    merchant = agencies.agency_by_key(state, body.merchant)
    if merchant is None or MERCHANT_ROLE not in merchant.roles:
        return refuse(Code.REWARD_NOT_MERCHANT, "merchant is not a participating agency")
    balance = balance_of(state, ctx.signer)
    if body.points > balance:
        return refuse(Code.REWARD_INSUFFICIENT_POINTS, "points exceed the holder's balance")
    _set_balance(state, ctx.signer, balance - body.points)
    supply = current_supply(state)
    _set_supply(state, ctx.height, awarded=supply.awarded, redeemed=supply.redeemed + body.points)
    attributes = (
        ("reward.holder", ctx.signer.hex()),
        ("reward.merchant", merchant.name),
        ("reward.points", str(body.points)),
    )
    return accept("redeemed", attributes)


def _set_balance(state: Overlay, holder: bytes, points: int) -> None:
    assert 0 <= points <= U64_MAX, points
    if points == 0:
        state.delete(BALANCE_PREFIX + holder)  # absent means 0: no dust rows
    else:
        state.put(BALANCE_PREFIX + holder, points.to_bytes(8, "big"))


def _set_supply(state: Overlay, height: int, *, awarded: int, redeemed: int) -> None:
    supply = Supply(awarded=awarded, redeemed=redeemed, supply=awarded - redeemed, height=height)
    assert supply.consistent(), supply
    raw = ENCODER.encode(supply)
    state.put(SUPPLY_KEY, raw)
    state.put(_history_key(height), raw)


def _query_record(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("id",))
    raw = state.get(RECORD_PREFIX + id_key(id_param(query, "id")))
    if raw is None:
        return QueryResult(found=False)
    record = _RECORD_DECODER.decode(raw)
    value = {
        "record_id": record.record_id,
        "holder": record.holder.hex(),
        "points": record.points,
        "activity": record.activity,
        "memo": record.memo,
        "issuer": record.issuer.hex(),
        "height": record.height,
        "time_ms": record.time_ms,
        "tx_index": record.tx_index,
        "tx_hash": record.tx_hash.hex(),
    }
    return QueryResult(found=True, value=value)


def _query_supply(query: Mapping[str, str], state: StateView) -> QueryResult:
    """Without `height`: the current supply. With it: the supply as it stood after that
    block (for a height not yet reached, the current supply)."""
    params.expect_params(query, required=(), optional=("height",))
    if query.get("height"):
        height = u64_param(query, "height")
        supply = supply_at(state, height)
        asked: int | None = height
    else:
        supply = current_supply(state)
        asked = None
    value = {
        "height": asked,
        "changed_height": supply.height,
        "awarded": supply.awarded,
        "redeemed": supply.redeemed,
        "supply": supply.supply,
    }
    return QueryResult(found=True, value=value, height=supply.height)
