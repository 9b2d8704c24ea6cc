"""Fund flows (issue 7 part A): every rule of campaigns, donations, expenditures and
subcontract escrow, through real blocks; flows paging; events; conservation."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services import fund
from services.app import SeoulApplication
from services.codes import Code
from services.fund_bodies import (
    MilestoneBody,
    encode_approve,
    encode_cancel,
    encode_contract,
    encode_create,
    encode_donate,
    encode_spend,
)
from services.genesis import Agency, ServicesGenesis
from services.interface import QueryError
from services.router import REPLAY_PREFIX
from services.service_fields import U64_MAX
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

WELFARE = SigningKey.from_secret(b"welfare office")
PARKS = SigningKey.from_secret(b"parks department")
AUDIT = SigningKey.from_secret(b"audit office")
DONOR = SigningKey.from_secret(b"donor")
BUILDER = SigningKey.from_secret(b"builder")
INSPECTOR = SigningKey.from_secret(b"site inspector")
CAMPAIGN = "winter-relief-2026"


@pytest.fixture
def chain() -> AppHarness:
    genesis = ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Welfare", public_key=WELFARE.public_key, roles=(fund.ROLE,)),
            Agency(name="Parks", public_key=PARKS.public_key, roles=(fund.ROLE,)),
            Agency(name="Audit", public_key=AUDIT.public_key, roles=("auditor",)),
        ),
    )
    return AppHarness(SeoulApplication(genesis), chain_id=CHAIN_ID)


def create(key: SigningKey = WELFARE, campaign: str = CAMPAIGN) -> Tx:
    return sign(key, "fund.create", encode_create(campaign, "campaign", "Winter relief"))


def donate(amount: int, key: SigningKey = DONOR, campaign: str = CAMPAIGN) -> Tx:
    body = encode_donate(campaign, amount, reference="KB-0001", memo="for heating")
    return sign(key, "fund.donate", body)


def spend(amount: int, key: SigningKey = WELFARE, campaign: str = CAMPAIGN) -> Tx:
    body = encode_spend(campaign, amount, "briquettes", payee="Coal Co-op")
    return sign(key, "fund.spend", body)


def milestone(amount: int, inspector: SigningKey = INSPECTOR) -> MilestoneBody:
    return MilestoneBody(
        amount=amount,
        description=f"stage worth {amount}",
        subcontractor=BUILDER.public_key,
        inspector=inspector.public_key,
    )


def contract(*amounts: int, key: SigningKey = WELFARE, contract_id: str = "c-1") -> Tx:
    body = encode_contract(CAMPAIGN, contract_id, "Shelter", [milestone(a) for a in amounts])
    return sign(key, "fund.contract", body)


def approve(index: int, key: SigningKey = INSPECTOR, contract_id: str = "c-1") -> Tx:
    return sign(key, "fund.approve", encode_approve(contract_id, index, "checked on site"))


def cancel(key: SigningKey = WELFARE, contract_id: str = "c-1") -> Tx:
    return sign(key, "fund.cancel", encode_cancel(contract_id, "builder went bankrupt"))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def campaign(chain: AppHarness) -> Any:
    answer = chain.query("fund/campaign", {"id": CAMPAIGN})
    return answer.value if answer.found else None


def money(chain: AppHarness) -> tuple[int, int, int, int, int]:
    value = campaign(chain)
    parts = (value["total_in"], value["balance"], value["escrowed"], value["spent"])
    assert (
        value["total_in"] == value["balance"] + value["escrowed"] + value["spent"] + value["paid"]
    )
    return (*parts, value["paid"])


def fund_keys(writes: Any) -> list[bytes]:
    return [key for key in writes if key.startswith(b"fund/")]


def test_create_records_manager_and_zero_balances(chain: AppHarness) -> None:
    outcome = chain.run_block([create()])
    assert codes(outcome.results) == [Code.OK]
    value = campaign(chain)
    assert value["manager"] == WELFARE.public_key.hex()
    assert (value["category"], value["title"]) == ("campaign", "Winter relief")
    assert money(chain) == (0, 0, 0, 0, 0)
    assert outcome.events[0].attributes == (("fund.campaign", CAMPAIGN),)


def test_create_needs_role_and_fresh_id(chain: AppHarness) -> None:
    outcome = chain.run_block([create(key=AUDIT), create(key=DONOR), create(), create(key=PARKS)])
    assert codes(outcome.results) == [
        Code.UNAUTHORIZED,
        Code.UNAUTHORIZED,
        Code.OK,
        Code.FUND_CAMPAIGN_EXISTS,
    ]
    assert campaign(chain)["manager"] == WELFARE.public_key.hex()


def test_anyone_donates_and_the_flow_is_traceable(chain: AppHarness) -> None:
    chain.run_block([create()])
    tx = donate(5_000)
    outcome = chain.run_block([donate(1_000, key=AUDIT), tx], time_ms=77_000)
    assert codes(outcome.results) == [Code.OK, Code.OK]
    assert money(chain) == (6_000, 6_000, 0, 0, 0)
    flows = chain.query("fund/flows", {"campaign": CAMPAIGN}).value["flows"]
    assert flows[1] == {
        "flow": "donation",
        "amount": 5_000,
        "signer": DONOR.public_key.hex(),
        "party": DONOR.public_key.hex(),
        "purpose": "for heating",
        "reference": "KB-0001",
        "contract_id": None,
        "milestone": None,
        "balance_after": 6_000,
        "height": 2,
        "time_ms": 77_000,
        "tx_index": 1,
        "tx_hash": tx.hash().hex(),
    }
    assert ("fund.amount", "5000") in outcome.events[1].attributes


def test_donation_to_unknown_campaign_refused(chain: AppHarness) -> None:
    outcome = chain.run_block([donate(10, campaign="nope")])
    assert codes(outcome.results) == [Code.FUND_UNKNOWN_CAMPAIGN]
    assert fund_keys(outcome.writes) == []


def test_donation_total_cannot_overflow_u64(chain: AppHarness) -> None:
    chain.run_block([create(), donate(U64_MAX)])
    outcome = chain.run_block([donate(1)])
    assert codes(outcome.results) == [Code.FUND_AMOUNT_OVERFLOW]
    assert money(chain)[0] == U64_MAX


def test_spend_by_manager_up_to_balance_never_overdraws(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000)])
    outcome = chain.run_block([spend(600), spend(401), spend(400)])
    assert codes(outcome.results) == [Code.OK, Code.FUND_INSUFFICIENT_BALANCE, Code.OK]
    assert money(chain) == (1_000, 0, 0, 1_000, 0)
    flows = chain.query("fund/flows", {"campaign": CAMPAIGN}).value["flows"]
    assert [(f["flow"], f["party"], f["purpose"]) for f in flows[1:]] == [
        ("expenditure", "Coal Co-op", "briquettes"),
        ("expenditure", "Coal Co-op", "briquettes"),
    ]


def test_only_the_campaigns_manager_spends(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000)])
    outcome = chain.run_block([spend(1, key=PARKS), spend(1, key=DONOR), spend(1, campaign="x")])
    assert codes(outcome.results) == [
        Code.FUND_NOT_MANAGER,
        Code.UNAUTHORIZED,
        Code.FUND_UNKNOWN_CAMPAIGN,
    ]
    assert money(chain) == (1_000, 1_000, 0, 0, 0)


def test_contract_locks_escrow_and_inspector_approval_pays(chain: AppHarness) -> None:
    chain.run_block([create(), donate(10_000)])
    outcome = chain.run_block([contract(3_000, 2_000)])
    assert codes(outcome.results) == [Code.OK]
    assert money(chain) == (10_000, 5_000, 5_000, 0, 0)
    tx = approve(1)
    outcome = chain.run_block([tx])
    assert codes(outcome.results) == [Code.OK]
    assert money(chain) == (10_000, 5_000, 3_000, 0, 2_000)
    value = chain.query("fund/contract", {"id": "c-1"}).value
    assert value["status"] == "open"
    assert value["unpaid"] == 3_000
    assert value["milestones"][1]["status"] == "paid"
    assert value["milestones"][1]["paid_tx_hash"] == tx.hash().hex()
    payment = chain.query("fund/flows", {"campaign": CAMPAIGN}).value["flows"][-1]
    assert (payment["flow"], payment["amount"], payment["party"]) == (
        "milestone_payment",
        2_000,
        BUILDER.public_key.hex(),
    )
    assert ("fund.contract", "c-1") in outcome.events[0].attributes
    chain.run_block([approve(0)])
    assert chain.query("fund/contract", {"id": "c-1"}).value["status"] == "settled"
    assert money(chain) == (10_000, 5_000, 0, 0, 5_000)


def test_no_double_payment(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000), contract(500)])
    outcome = chain.run_block([approve(0), approve(0)])
    assert codes(outcome.results) == [Code.OK, Code.FUND_MILESTONE_PAID]
    outcome = chain.run_block([approve(0)])
    assert codes(outcome.results) == [Code.FUND_MILESTONE_PAID]
    assert money(chain) == (1_000, 500, 0, 0, 500)


def test_contract_rules(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000), create(key=PARKS, campaign="parks")])
    self_inspected = MilestoneBody(
        amount=1, description="x", subcontractor=BUILDER.public_key, inspector=BUILDER.public_key
    )
    outcome = chain.run_block(
        [
            contract(1_001),  # more than the balance
            contract(1, key=PARKS),  # not this campaign's manager
            sign(WELFARE, "fund.contract", encode_contract(CAMPAIGN, "c-9", "t", [self_inspected])),
            contract(600),
            contract(100),  # contract id taken
            contract(401, contract_id="c-2"),  # only 400 left free
        ]
    )
    assert codes(outcome.results) == [
        Code.FUND_INSUFFICIENT_BALANCE,
        Code.FUND_NOT_MANAGER,
        Code.FUND_INSPECTOR_IS_PAYEE,
        Code.OK,
        Code.FUND_CONTRACT_EXISTS,
        Code.FUND_INSUFFICIENT_BALANCE,
    ]
    assert money(chain) == (1_000, 400, 600, 0, 0)


def test_escrowed_funds_cannot_be_spent(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000), contract(800)])
    assert codes(chain.run_block([spend(201)]).results) == [Code.FUND_INSUFFICIENT_BALANCE]


def test_approve_rules(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000), contract(100, 200)])
    outcome = chain.run_block(
        [
            approve(0, contract_id="none"),
            approve(2),
            approve(0, key=BUILDER),  # the payee cannot approve
            approve(0, key=WELFARE),  # nor the manager
        ]
    )
    assert codes(outcome.results) == [
        Code.FUND_UNKNOWN_CONTRACT,
        Code.FUND_UNKNOWN_MILESTONE,
        Code.FUND_NOT_INSPECTOR,
        Code.FUND_NOT_INSPECTOR,
    ]
    assert fund_keys(outcome.writes) == []


def test_cancel_returns_unpaid_escrow_and_blocks_later_approval(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000), contract(100, 200), approve(0)])
    outcome = chain.run_block([cancel(key=PARKS), cancel()])
    assert codes(outcome.results) == [Code.FUND_NOT_MANAGER, Code.OK]
    assert money(chain) == (1_000, 900, 0, 0, 100)
    value = chain.query("fund/contract", {"id": "c-1"}).value
    assert value["status"] == "cancelled"
    assert [m["status"] for m in value["milestones"]] == ["paid", "cancelled"]
    outcome = chain.run_block([approve(1), approve(0), cancel(), cancel(contract_id="x")])
    assert codes(outcome.results) == [
        Code.FUND_CONTRACT_CANCELLED,
        Code.FUND_MILESTONE_PAID,
        Code.FUND_CONTRACT_CANCELLED,
        Code.FUND_UNKNOWN_CONTRACT,
    ]
    assert money(chain) == (1_000, 900, 0, 0, 100)


def test_cancel_of_a_settled_contract_refused(chain: AppHarness) -> None:
    chain.run_block([create(), donate(1_000), contract(100), approve(0)])
    assert codes(chain.run_block([cancel()]).results) == [Code.FUND_CONTRACT_SETTLED]


def test_failed_tx_changes_nothing_but_its_replay_key(chain: AppHarness) -> None:
    chain.run_block([create(), donate(10)])
    tx = spend(11)
    outcome = chain.run_block([tx])
    assert list(outcome.writes) == [REPLAY_PREFIX + tx.replay_key]


def test_flows_page_in_chain_order(chain: AppHarness) -> None:
    chain.run_block([create()])
    for amount in range(1, 8):
        chain.run_block([donate(amount)])
    seen: list[int] = []
    cursor: str | None = ""
    while cursor is not None:
        answer = chain.query("fund/flows", {"campaign": CAMPAIGN, "limit": "3", "after": cursor})
        seen += [flow["amount"] for flow in answer.value["flows"]]
        cursor = answer.value["next"]
    assert seen == list(range(1, 8))


def test_queries_of_unknown_ids_and_bad_params(chain: AppHarness) -> None:
    assert not chain.query("fund/campaign", {"id": "x"}).found
    assert not chain.query("fund/contract", {"id": "x"}).found
    assert not chain.query("fund/flows", {"campaign": "x"}).found
    for path, query in [
        ("fund/campaign", {"id": "bad id"}),
        ("fund/contract", {}),
        ("fund/flows", {"campaign": CAMPAIGN, "limit": "101"}),
    ]:
        with pytest.raises(QueryError):
            chain.query(path, query)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("fund.donate", {"campaign_id": CAMPAIGN, "amount": 0}),
        ("fund.donate", {"campaign_id": CAMPAIGN, "amount": -5}),
        ("fund.donate", {"campaign_id": CAMPAIGN, "amount": 1.5}),
        ("fund.donate", {"campaign_id": CAMPAIGN, "amount": "10"}),
        ("fund.create", {"campaign_id": "c", "category": "lottery", "title": "t"}),
        (
            "fund.contract",
            {"campaign_id": CAMPAIGN, "contract_id": "k", "title": "t", "milestones": []},
        ),
        ("fund.approve", {"contract_id": "c-1", "milestone": 16}),
    ],
)
def test_bad_bodies_are_body_invalid(chain: AppHarness, kind: str, body: dict[str, Any]) -> None:
    outcome = chain.run_block([sign(WELFARE, kind, body)])
    assert codes(outcome.results) == [Code.BODY_INVALID]


def test_contract_with_seventeen_milestones_is_body_invalid(chain: AppHarness) -> None:
    body = {
        "campaign_id": CAMPAIGN,
        "contract_id": "k",
        "title": "t",
        "milestones": [
            {
                "amount": 1,
                "description": "d",
                "subcontractor": BUILDER.public_key,
                "inspector": INSPECTOR.public_key,
            }
        ]
        * 17,
    }
    outcome = chain.run_block([sign(WELFARE, "fund.contract", body)])
    assert codes(outcome.results) == [Code.BODY_INVALID]


def test_client_encoders_refuse_bad_fields() -> None:
    with pytest.raises(ValueError, match="amount"):
        encode_donate(CAMPAIGN, 0)
    with pytest.raises(ValueError, match="category"):
        encode_create(CAMPAIGN, "lottery", "t")
