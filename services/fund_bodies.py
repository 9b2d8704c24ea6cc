"""Tx bodies and stored records of the fund-flows service (services/fund.py).

Bodies are msgpack maps decoded strictly (unknown fields refused, every field bounded);
records are what the chain keeps, encoded with every field present in declaration order so
that one record has one byte string on every node.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from services.service_fields import (
    ENCODER,
    PRINTABLE,
    Amount,
    Note,
    PublicKey,
    RecordId,
    Title,
)

milestones_per_contract_max = 16
Reference = Annotated[str, msgspec.Meta(max_length=128, pattern=PRINTABLE)]
MilestoneIndex = Annotated[int, msgspec.Meta(ge=0, lt=milestones_per_contract_max)]


class CreateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `fund.create`: a donation campaign or a budget, managed by the signer."""

    campaign_id: RecordId
    category: Literal["campaign", "budget"]
    title: Title
    purpose: Note = ""


class DonateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `fund.donate`: the signer's signed statement that it paid `amount` in."""

    campaign_id: RecordId
    amount: Amount
    reference: Reference = ""  # e.g. the bank transfer or receipt number
    memo: Note = ""


class SpendBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `fund.spend`: an expenditure by the campaign's manager."""

    campaign_id: RecordId
    amount: Amount
    purpose: Title
    payee: Reference = ""
    reference: Reference = ""


class MilestoneBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Amount
    description: Title
    subcontractor: PublicKey
    inspector: PublicKey


class ContractBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `fund.contract`: lock funds of a campaign in milestones (escrow)."""

    campaign_id: RecordId
    contract_id: RecordId
    title: Title
    milestones: Annotated[
        list[MilestoneBody], msgspec.Meta(min_length=1, max_length=milestones_per_contract_max)
    ]


class ApproveBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `fund.approve`: the milestone's inspector approves; the chain pays it."""

    contract_id: RecordId
    milestone: MilestoneIndex
    note: Note = ""


class CancelBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `fund.cancel`: the manager ends a contract; unpaid escrow returns."""

    contract_id: RecordId
    reason: Title


class Campaign(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A campaign's money, always conserved: total_in == balance + escrowed + spent + paid."""

    campaign_id: str
    category: str
    title: str
    purpose: str
    manager: bytes
    created_height: int
    total_in: int  # every donation ever recorded
    balance: int  # free to spend or lock
    escrowed: int  # locked in pending milestones
    spent: int  # expenditures
    paid: int  # milestone payments

    def conserved(self) -> bool:
        parts = (self.balance, self.escrowed, self.spent, self.paid)
        return all(part >= 0 for part in parts) and sum(parts) == self.total_in


class Milestone(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: int
    description: str
    subcontractor: bytes
    inspector: bytes
    status: str  # "pending", "paid", "cancelled"
    paid_height: int | None = None
    paid_tx_hash: bytes | None = None


class Contract(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    contract_id: str
    campaign_id: str
    title: str
    manager: bytes
    milestones: list[Milestone]
    status: str  # "open", "settled" (all paid), "cancelled"
    created_height: int
    tx_hash: bytes

    def pending_total(self) -> int:
        return sum(m.amount for m in self.milestones if m.status == "pending")


class Flow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One money movement of a campaign, traceable by anyone."""

    flow: str  # "donation", "expenditure", "escrow_lock", "milestone_payment", "escrow_release"
    amount: int
    signer: bytes
    party: str  # donor key / payee text / subcontractor key (hex), by flow type
    purpose: str
    reference: str
    contract_id: str | None
    milestone: int | None
    balance_after: int
    height: int
    time_ms: int
    tx_index: int
    tx_hash: bytes


CAMPAIGN_DECODER = msgspec.msgpack.Decoder(Campaign)
CONTRACT_DECODER = msgspec.msgpack.Decoder(Contract)
FLOW_DECODER = msgspec.msgpack.Decoder(Flow)


def _validated(body: msgspec.Struct) -> bytes:
    """Encode, then decode with the chain's decoder: a field out of bounds raises
    msgspec.ValidationError (a ValueError) on the client, before anything is signed."""
    raw = ENCODER.encode(body)
    msgspec.msgpack.decode(raw, type=type(body))
    return raw


def encode_create(campaign_id: str, category: str, title: str, purpose: str = "") -> bytes:
    return ENCODER.encode(
        msgspec.convert(
            {"campaign_id": campaign_id, "category": category, "title": title, "purpose": purpose},
            CreateBody,
        )
    )


def encode_donate(campaign_id: str, amount: int, *, reference: str = "", memo: str = "") -> bytes:
    return _validated(
        DonateBody(campaign_id=campaign_id, amount=amount, reference=reference, memo=memo)
    )


def encode_spend(
    campaign_id: str, amount: int, purpose: str, *, payee: str = "", reference: str = ""
) -> bytes:
    body = SpendBody(
        campaign_id=campaign_id, amount=amount, purpose=purpose, payee=payee, reference=reference
    )
    return _validated(body)


def encode_contract(
    campaign_id: str, contract_id: str, title: str, milestones: list[MilestoneBody]
) -> bytes:
    body = ContractBody(
        campaign_id=campaign_id, contract_id=contract_id, title=title, milestones=milestones
    )
    return _validated(body)


def encode_approve(contract_id: str, milestone: int, note: str = "") -> bytes:
    return _validated(ApproveBody(contract_id=contract_id, milestone=milestone, note=note))


def encode_cancel(contract_id: str, reason: str) -> bytes:
    return _validated(CancelBody(contract_id=contract_id, reason=reason))
