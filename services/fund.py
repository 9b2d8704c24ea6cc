"""Fund flows: donation campaigns and budgets, expenditures, and subcontract escrow.

The money model (docs/services/fund.md §Model): the chain holds no fiat. It keeps a ledger
of money movements that it is told about, each signed by the party responsible for it:
a donation is the donor's signed statement that it paid `amount` into the campaign (with
a bank reference to reconcile); an expenditure is the manager's signed statement of a
payment out. Because every statement is signed and kept forever, a false one is
attributable to its signer. What the chain guarantees is the arithmetic: no overdraft, no
double payment, and per campaign, always,

    total_in == balance + escrowed + spent + paid      (Campaign.conserved, asserted)

Subcontract escrow: the manager locks part of the balance into a contract's milestones
(amount, description, subcontractor key, inspector key). The milestone's inspector signs
`fund.approve`, and that very tx pays the subcontractor (escrowed -> paid, with a payment
flow): no second step a manager could withhold. `fund.cancel` returns unpaid escrow.

Rules, after the router's generic checks (roles: `fund_manager` for create, spend,
contract and cancel; anyone for donate; the named inspector for approve):
    fund.create    id unused                                else FUND_CAMPAIGN_EXISTS
    fund.donate    campaign exists                          else FUND_UNKNOWN_CAMPAIGN
                   total_in + amount <= u64 max             else FUND_AMOUNT_OVERFLOW
    fund.spend     campaign exists; signer is its manager   else ..._UNKNOWN_CAMPAIGN / _NOT_MANAGER
                   amount <= balance                        else FUND_INSUFFICIENT_BALANCE
    fund.contract  campaign exists; signer is its manager
                   contract id unused                       else FUND_CONTRACT_EXISTS
                   no milestone's inspector is its payee    else FUND_INSPECTOR_IS_PAYEE
                   sum of milestones <= balance             else FUND_INSUFFICIENT_BALANCE
    fund.approve   contract exists; milestone exists        else ..._UNKNOWN_CONTRACT / _MILESTONE
                   signer is the milestone's inspector      else FUND_NOT_INSPECTOR
                   milestone not paid; contract not cancelled  else _MILESTONE_PAID / _CANCELLED
    fund.cancel    contract exists; signer is its manager
                   not cancelled; something still unpaid    else _CONTRACT_CANCELLED / _SETTLED

State:
    fund/c/<u8 len><campaign id>                  -> msgpack Campaign
    fund/k/<u8 len><contract id>                  -> msgpack Contract
    fund/f/<u8 len><campaign id><u64 h><u32 i>    -> msgpack Flow  (one per tx per campaign)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from services import params
from services.codes import Code
from services.fund_bodies import (
    CAMPAIGN_DECODER,
    CONTRACT_DECODER,
    FLOW_DECODER,
    ApproveBody,
    Campaign,
    CancelBody,
    Contract,
    ContractBody,
    CreateBody,
    DonateBody,
    Flow,
    Milestone,
    SpendBody,
)
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext
from services.service_fields import (
    ENCODER,
    POSITION_BYTES,
    U64_MAX,
    accept,
    check_page_params,
    id_key,
    id_param,
    page,
    position,
    refuse,
)

log = logging.getLogger(__name__)

ROLE = "fund_manager"
CAMPAIGN_PREFIX = b"fund/c/"
CONTRACT_PREFIX = b"fund/k/"
FLOW_PREFIX = b"fund/f/"


def load_campaign(state: StateView, campaign_id: str) -> Campaign | None:
    raw = state.get(CAMPAIGN_PREFIX + id_key(campaign_id))
    return None if raw is None else CAMPAIGN_DECODER.decode(raw)


def load_contract(state: StateView, contract_id: str) -> Contract | None:
    raw = state.get(CONTRACT_PREFIX + id_key(contract_id))
    return None if raw is None else CONTRACT_DECODER.decode(raw)


class FundService:
    name = "fund"
    kinds: Mapping[str, KindSpec] = {
        "fund.create": KindSpec(body_type=CreateBody, role=ROLE),
        "fund.donate": KindSpec(body_type=DonateBody, role=None),
        "fund.spend": KindSpec(body_type=SpendBody, role=ROLE),
        "fund.contract": KindSpec(body_type=ContractBody, role=ROLE),
        "fund.approve": KindSpec(body_type=ApproveBody, role=None),
        "fund.cancel": KindSpec(body_type=CancelBody, role=ROLE),
    }
    query_paths: tuple[str, ...] = ("fund/campaign", "fund/contract", "fund/flows")

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, CreateBody):
            return _create(ctx, body, state)
        if isinstance(body, DonateBody):
            return _donate(ctx, body, state)
        if isinstance(body, SpendBody):
            return _spend(ctx, body, state)
        if isinstance(body, ContractBody):
            return _contract(ctx, body, state)
        if isinstance(body, ApproveBody):
            return _approve(ctx, body, state)
        assert isinstance(body, CancelBody), type(body)
        return _cancel(ctx, body, state)

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "fund/campaign":
            return _query_campaign(query, state)
        if path == "fund/contract":
            return _query_contract(query, state)
        if path == "fund/flows":
            return _query_flows(query, state)
        raise QueryError(f"unknown path {path!r}")


def _create(ctx: TxContext, body: CreateBody, state: Overlay) -> Delivery:
    if load_campaign(state, body.campaign_id) is not None:
        return refuse(Code.FUND_CAMPAIGN_EXISTS, "campaign id already used")
    campaign = Campaign(
        campaign_id=body.campaign_id,
        category=body.category,
        title=body.title,
        purpose=body.purpose,
        manager=ctx.signer,
        created_height=ctx.height,
        total_in=0,
        balance=0,
        escrowed=0,
        spent=0,
        paid=0,
    )
    _save_campaign(state, campaign)
    return accept("created", (("fund.campaign", body.campaign_id),))


def _donate(ctx: TxContext, body: DonateBody, state: Overlay) -> Delivery:
    campaign = load_campaign(state, body.campaign_id)
    if campaign is None:
        return refuse(Code.FUND_UNKNOWN_CAMPAIGN, "campaign id unknown")
    if campaign.total_in + body.amount > U64_MAX:
        return refuse(Code.FUND_AMOUNT_OVERFLOW, "campaign total would exceed u64")
    updated = msgspec.structs.replace(
        campaign, total_in=campaign.total_in + body.amount, balance=campaign.balance + body.amount
    )
    flow = _flow(ctx, updated, "donation", body.amount, party=ctx.signer.hex())
    flow = msgspec.structs.replace(flow, purpose=body.memo, reference=body.reference)
    return _commit(state, updated, flow, "donated")


def _spend(ctx: TxContext, body: SpendBody, state: Overlay) -> Delivery:
    campaign = load_campaign(state, body.campaign_id)
    refused = _manager_refused(ctx, campaign)
    if refused is not None:
        return refused
    assert campaign is not None
    if body.amount > campaign.balance:
        return refuse(Code.FUND_INSUFFICIENT_BALANCE, "amount exceeds the free balance")
    updated = msgspec.structs.replace(
        campaign, balance=campaign.balance - body.amount, spent=campaign.spent + body.amount
    )
    flow = _flow(ctx, updated, "expenditure", body.amount, party=body.payee)
    flow = msgspec.structs.replace(flow, purpose=body.purpose, reference=body.reference)
    return _commit(state, updated, flow, "spent")


def _contract(ctx: TxContext, body: ContractBody, state: Overlay) -> Delivery:
    campaign = load_campaign(state, body.campaign_id)
    refused = _manager_refused(ctx, campaign)
    if refused is not None:
        return refused
    assert campaign is not None
    if load_contract(state, body.contract_id) is not None:
        return refuse(Code.FUND_CONTRACT_EXISTS, "contract id already used")
    if any(m.inspector == m.subcontractor for m in body.milestones):
        return refuse(Code.FUND_INSPECTOR_IS_PAYEE, "an inspector may not approve own payment")
    total = sum(m.amount for m in body.milestones)
    if total > campaign.balance:
        return refuse(Code.FUND_INSUFFICIENT_BALANCE, "milestones exceed the free balance")
    milestones = [
        Milestone(
            amount=m.amount,
            description=m.description,
            subcontractor=m.subcontractor,
            inspector=m.inspector,
            status="pending",
        )
        for m in body.milestones
    ]
    contract = Contract(
        contract_id=body.contract_id,
        campaign_id=body.campaign_id,
        title=body.title,
        manager=ctx.signer,
        milestones=milestones,
        status="open",
        created_height=ctx.height,
        tx_hash=ctx.tx_hash,
    )
    updated = msgspec.structs.replace(
        campaign, balance=campaign.balance - total, escrowed=campaign.escrowed + total
    )
    state.put(CONTRACT_PREFIX + id_key(body.contract_id), ENCODER.encode(contract))
    flow = _flow(ctx, updated, "escrow_lock", total, party="", contract_id=body.contract_id)
    flow = msgspec.structs.replace(flow, purpose=body.title)
    return _commit(state, updated, flow, "escrowed")


def _approve(ctx: TxContext, body: ApproveBody, state: Overlay) -> Delivery:
    contract = load_contract(state, body.contract_id)
    if contract is None:
        return refuse(Code.FUND_UNKNOWN_CONTRACT, "contract id unknown")
    if body.milestone >= len(contract.milestones):
        return refuse(Code.FUND_UNKNOWN_MILESTONE, "contract has no such milestone")
    milestone = contract.milestones[body.milestone]
    if ctx.signer != milestone.inspector:
        return refuse(Code.FUND_NOT_INSPECTOR, "only the milestone's inspector may approve")
    if milestone.status == "paid":
        return refuse(Code.FUND_MILESTONE_PAID, "milestone already paid")
    if contract.status == "cancelled":
        return refuse(Code.FUND_CONTRACT_CANCELLED, "contract is cancelled")
    assert milestone.status == "pending", milestone.status
    paid = msgspec.structs.replace(
        milestone, status="paid", paid_height=ctx.height, paid_tx_hash=ctx.tx_hash
    )
    milestones = list(contract.milestones)
    milestones[body.milestone] = paid
    settled = all(m.status == "paid" for m in milestones)
    updated_contract = msgspec.structs.replace(
        contract, milestones=milestones, status="settled" if settled else "open"
    )
    state.put(CONTRACT_PREFIX + id_key(contract.contract_id), ENCODER.encode(updated_contract))
    campaign = load_campaign(state, contract.campaign_id)
    assert campaign is not None, f"contract {contract.contract_id} of a missing campaign"
    updated = msgspec.structs.replace(
        campaign,
        escrowed=campaign.escrowed - milestone.amount,
        paid=campaign.paid + milestone.amount,
    )
    flow = _flow(
        ctx,
        updated,
        "milestone_payment",
        milestone.amount,
        party=milestone.subcontractor.hex(),
        contract_id=contract.contract_id,
        milestone=body.milestone,
    )
    flow = msgspec.structs.replace(flow, purpose=milestone.description, reference=body.note)
    return _commit(state, updated, flow, "paid")


def _cancel(ctx: TxContext, body: CancelBody, state: Overlay) -> Delivery:
    contract = load_contract(state, body.contract_id)
    if contract is None:
        return refuse(Code.FUND_UNKNOWN_CONTRACT, "contract id unknown")
    if ctx.signer != contract.manager:
        return refuse(Code.FUND_NOT_MANAGER, "only the contract's manager may cancel")
    if contract.status == "cancelled":
        return refuse(Code.FUND_CONTRACT_CANCELLED, "contract is already cancelled")
    unpaid = contract.pending_total()
    if unpaid == 0:
        return refuse(Code.FUND_CONTRACT_SETTLED, "every milestone is already paid")
    milestones = [
        msgspec.structs.replace(m, status="cancelled") if m.status == "pending" else m
        for m in contract.milestones
    ]
    cancelled = msgspec.structs.replace(contract, milestones=milestones, status="cancelled")
    state.put(CONTRACT_PREFIX + id_key(contract.contract_id), ENCODER.encode(cancelled))
    campaign = load_campaign(state, contract.campaign_id)
    assert campaign is not None, f"contract {contract.contract_id} of a missing campaign"
    updated = msgspec.structs.replace(
        campaign, escrowed=campaign.escrowed - unpaid, balance=campaign.balance + unpaid
    )
    flow = _flow(ctx, updated, "escrow_release", unpaid, party="", contract_id=body.contract_id)
    flow = msgspec.structs.replace(flow, purpose=body.reason)
    return _commit(state, updated, flow, "cancelled")


def _manager_refused(ctx: TxContext, campaign: Campaign | None) -> Delivery | None:
    if campaign is None:
        return refuse(Code.FUND_UNKNOWN_CAMPAIGN, "campaign id unknown")
    if campaign.manager != ctx.signer:
        return refuse(Code.FUND_NOT_MANAGER, "signer does not manage this campaign")
    return None


def _flow(
    ctx: TxContext,
    campaign: Campaign,
    kind: str,
    amount: int,
    *,
    party: str,
    contract_id: str | None = None,
    milestone: int | None = None,
) -> Flow:
    return Flow(
        flow=kind,
        amount=amount,
        signer=ctx.signer,
        party=party,
        purpose="",
        reference="",
        contract_id=contract_id,
        milestone=milestone,
        balance_after=campaign.balance,
        height=ctx.height,
        time_ms=ctx.time_ms,
        tx_index=ctx.tx_index,
        tx_hash=ctx.tx_hash,
    )


def _save_campaign(state: Overlay, campaign: Campaign) -> None:
    assert campaign.conserved(), f"fund conservation broken: {campaign}"
    state.put(CAMPAIGN_PREFIX + id_key(campaign.campaign_id), ENCODER.encode(campaign))


def _commit(state: Overlay, campaign: Campaign, flow: Flow, text: str) -> Delivery:
    """Write the campaign and its flow; the event names both for subscribers."""
    _save_campaign(state, campaign)
    key = FLOW_PREFIX + id_key(campaign.campaign_id) + position(flow.height, flow.tx_index)
    assert state.get(key) is None, "two flows of one campaign in one tx"
    state.put(key, ENCODER.encode(flow))
    attributes = [
        ("fund.campaign", campaign.campaign_id),
        ("fund.flow", flow.flow),
        ("fund.amount", str(flow.amount)),
    ]
    if flow.contract_id is not None:
        attributes.append(("fund.contract", flow.contract_id))
    return accept(text, tuple(attributes))


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": campaign.campaign_id,
        "category": campaign.category,
        "title": campaign.title,
        "purpose": campaign.purpose,
        "manager": campaign.manager.hex(),
        "created_height": campaign.created_height,
        "total_in": campaign.total_in,
        "balance": campaign.balance,
        "escrowed": campaign.escrowed,
        "spent": campaign.spent,
        "paid": campaign.paid,
    }


def contract_json(contract: Contract) -> dict[str, Any]:
    return {
        "contract_id": contract.contract_id,
        "campaign_id": contract.campaign_id,
        "title": contract.title,
        "manager": contract.manager.hex(),
        "status": contract.status,
        "created_height": contract.created_height,
        "tx_hash": contract.tx_hash.hex(),
        "unpaid": contract.pending_total(),
        "milestones": [
            {
                "index": index,
                "amount": m.amount,
                "description": m.description,
                "subcontractor": m.subcontractor.hex(),
                "inspector": m.inspector.hex(),
                "status": m.status,
                "paid_height": m.paid_height,
                "paid_tx_hash": None if m.paid_tx_hash is None else m.paid_tx_hash.hex(),
            }
            for index, m in enumerate(contract.milestones)
        ],
    }


def flow_json(flow: Flow) -> dict[str, Any]:
    return {
        "flow": flow.flow,
        "amount": flow.amount,
        "signer": flow.signer.hex(),
        "party": flow.party,
        "purpose": flow.purpose,
        "reference": flow.reference,
        "contract_id": flow.contract_id,
        "milestone": flow.milestone,
        "balance_after": flow.balance_after,
        "height": flow.height,
        "time_ms": flow.time_ms,
        "tx_index": flow.tx_index,
        "tx_hash": flow.tx_hash.hex(),
    }


def _query_campaign(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("id",))
    campaign = load_campaign(state, id_param(query, "id"))
    if campaign is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=campaign_json(campaign))


def _query_contract(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("id",))
    contract = load_contract(state, id_param(query, "id"))
    if contract is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=contract_json(contract))


def _query_flows(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One page of a campaign's flows in chain order; `next` is the cursor for `after`."""
    params.expect_params(query, required=("campaign",), optional=("after", "limit"))
    check_page_params(query, cursor_bytes=POSITION_BYTES)
    campaign = load_campaign(state, id_param(query, "campaign"))
    if campaign is None:
        return QueryResult(found=False)
    flows, next_cursor = page(
        state,
        FLOW_PREFIX + id_key(campaign.campaign_id),
        query,
        cursor_bytes=POSITION_BYTES,
        render=lambda _, raw: flow_json(FLOW_DECODER.decode(raw)),
    )
    value = {"campaign": campaign_json(campaign), "flows": flows, "next": next_cursor}
    return QueryResult(found=True, value=value)
