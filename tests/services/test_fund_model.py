"""Fund flows against a model (hypothesis state machine): random campaigns, donations,
expenditures, contracts, approvals and cancellations, several txs per block. Every result
code must match the model's, and after every block each campaign's money must match it:
no balance negative, no milestone paid twice, total_in == balance + escrowed + spent + paid.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from protocol.crypto import SigningKey
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
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

MANAGERS = (SigningKey.from_secret(b"model manager a"), SigningKey.from_secret(b"model manager b"))
DONORS = (SigningKey.from_secret(b"model donor"), MANAGERS[0])
INSPECTORS = (SigningKey.from_secret(b"model inspector 1"), SigningKey.from_secret(b"insp 2"))
BUILDER = SigningKey.from_secret(b"model builder")
CAMPAIGNS = ("c-a", "c-b", "c-c")  # the first two exist from the start
CONTRACTS = ("k-1", "k-2", "k-3")
BLOCK_TXS_MAX = 5
amounts = st.integers(min_value=1, max_value=400)


@dataclass
class ModelCampaign:
    manager: bytes
    total_in: int = 0
    balance: int = 0
    escrowed: int = 0
    spent: int = 0
    paid: int = 0


@dataclass
class ModelContract:
    campaign: str
    manager: bytes
    milestones: list[tuple[int, int, str]]  # (amount, inspector index, status)
    cancelled: bool = False


class FundMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        agencies = tuple(
            Agency(name=f"manager {index}", public_key=key.public_key, roles=(fund.ROLE,))
            for index, key in enumerate(MANAGERS)
        )
        genesis = ServicesGenesis(chain_id=CHAIN_ID, agencies=agencies)
        self.chain = AppHarness(SeoulApplication(genesis), chain_id=CHAIN_ID)
        self.campaigns: dict[str, ModelCampaign] = {}
        self.contracts: dict[str, ModelContract] = {}
        self.pending: list[tuple[Tx, Code]] = []

    @initialize(funds=st.lists(amounts, min_size=2, max_size=2))
    def open_two_funded_campaigns(self, funds: list[int]) -> None:
        """Start with money to move, so that contracts and payments are explored often."""
        for manager, campaign in enumerate(CAMPAIGNS[:2]):
            self.create(campaign, manager)
            self.donate(campaign, 0, funds[manager] * 3)
        self.flush()

    def _submit(self, tx: Tx, expected: Code) -> None:
        self.pending.append((tx, expected))
        if len(self.pending) >= BLOCK_TXS_MAX:
            self.flush()

    @rule()
    def flush(self) -> None:
        if not self.pending:
            return
        outcome = self.chain.run_block([tx for tx, _ in self.pending])
        assert [r.code for r in outcome.results] == [code for _, code in self.pending]
        self.pending.clear()

    @rule(campaign=st.sampled_from(CAMPAIGNS), manager=st.integers(0, 1))
    def create(self, campaign: str, manager: int) -> None:
        key = MANAGERS[manager]
        tx = sign(key, "fund.create", encode_create(campaign, "budget", "t"))
        if campaign in self.campaigns:
            self._submit(tx, Code.FUND_CAMPAIGN_EXISTS)
            return
        self.campaigns[campaign] = ModelCampaign(manager=key.public_key)
        self._submit(tx, Code.OK)

    @rule(campaign=st.sampled_from(CAMPAIGNS), donor=st.integers(0, 1), amount=amounts)
    def donate(self, campaign: str, donor: int, amount: int) -> None:
        tx = sign(DONORS[donor], "fund.donate", encode_donate(campaign, amount))
        model = self.campaigns.get(campaign)
        if model is None:
            self._submit(tx, Code.FUND_UNKNOWN_CAMPAIGN)
            return
        model.total_in += amount
        model.balance += amount
        self._submit(tx, Code.OK)

    @rule(campaign=st.sampled_from(CAMPAIGNS), manager=st.integers(0, 1), amount=amounts)
    def spend(self, campaign: str, manager: int, amount: int) -> None:
        key = MANAGERS[manager]
        tx = sign(key, "fund.spend", encode_spend(campaign, amount, "purpose"))
        model = self.campaigns.get(campaign)
        expected = self._manager_code(model, key)
        if expected is Code.OK and model is not None:
            if amount > model.balance:
                expected = Code.FUND_INSUFFICIENT_BALANCE
            else:
                model.balance -= amount
                model.spent += amount
        self._submit(tx, expected)

    @rule(
        campaign=st.sampled_from(CAMPAIGNS),
        contract=st.sampled_from(CONTRACTS),
        manager=st.integers(0, 1),
        milestones=st.lists(st.tuples(amounts, st.integers(0, 1)), min_size=1, max_size=3),
    )
    def lock(
        self, campaign: str, contract: str, manager: int, milestones: list[tuple[int, int]]
    ) -> None:
        key = MANAGERS[manager]
        bodies = [
            MilestoneBody(
                amount=amount,
                description="stage",
                subcontractor=BUILDER.public_key,
                inspector=INSPECTORS[inspector].public_key,
            )
            for amount, inspector in milestones
        ]
        tx = sign(key, "fund.contract", encode_contract(campaign, contract, "t", bodies))
        model = self.campaigns.get(campaign)
        expected = self._manager_code(model, key)
        total = sum(amount for amount, _ in milestones)
        if expected is not Code.OK or model is None:
            pass
        elif contract in self.contracts:
            expected = Code.FUND_CONTRACT_EXISTS
        elif total > model.balance:
            expected = Code.FUND_INSUFFICIENT_BALANCE
        else:
            model.balance -= total
            model.escrowed += total
            self.contracts[contract] = ModelContract(
                campaign=campaign,
                manager=key.public_key,
                milestones=[(amount, inspector, "pending") for amount, inspector in milestones],
            )
        self._submit(tx, expected)

    @rule(contract=st.sampled_from(CONTRACTS), index=st.integers(0, 3), inspector=st.integers(0, 1))
    def approve(self, contract: str, index: int, inspector: int) -> None:
        tx = sign(INSPECTORS[inspector], "fund.approve", encode_approve(contract, index))
        model = self.contracts.get(contract)
        if model is None:
            self._submit(tx, Code.FUND_UNKNOWN_CONTRACT)
            return
        if index >= len(model.milestones):
            self._submit(tx, Code.FUND_UNKNOWN_MILESTONE)
            return
        amount, named, status = model.milestones[index]
        if named != inspector:
            self._submit(tx, Code.FUND_NOT_INSPECTOR)
        elif status == "paid":
            self._submit(tx, Code.FUND_MILESTONE_PAID)
        elif model.cancelled:
            self._submit(tx, Code.FUND_CONTRACT_CANCELLED)
        else:
            model.milestones[index] = (amount, named, "paid")
            campaign = self.campaigns[model.campaign]
            campaign.escrowed -= amount
            campaign.paid += amount
            self._submit(tx, Code.OK)

    @rule(contract=st.sampled_from(CONTRACTS))
    def approve_every_milestone(self, contract: str) -> None:
        """Random approvals rarely pay a whole contract; this rule does, so that settled
        contracts (and cancels of them) are explored too."""
        model = self.contracts.get(contract)
        if model is None:
            return
        for index, (_, inspector, _) in enumerate(model.milestones):
            self.approve(contract, index, inspector)

    @rule(contract=st.sampled_from(CONTRACTS), manager=st.integers(0, 1))
    def cancel(self, contract: str, manager: int) -> None:
        key = MANAGERS[manager]
        tx = sign(key, "fund.cancel", encode_cancel(contract, "stop"))
        model = self.contracts.get(contract)
        unpaid = 0 if model is None else sum(a for a, _, s in model.milestones if s == "pending")
        if model is None:
            expected = Code.FUND_UNKNOWN_CONTRACT
        elif model.manager != key.public_key:
            expected = Code.FUND_NOT_MANAGER
        elif model.cancelled:
            expected = Code.FUND_CONTRACT_CANCELLED
        elif unpaid == 0:
            expected = Code.FUND_CONTRACT_SETTLED
        else:
            expected = Code.OK
            model.cancelled = True
            model.milestones = [
                (a, i, "cancelled" if s == "pending" else s) for a, i, s in model.milestones
            ]
            campaign = self.campaigns[model.campaign]
            campaign.escrowed -= unpaid
            campaign.balance += unpaid
        self._submit(tx, expected)

    def _manager_code(self, model: ModelCampaign | None, key: SigningKey) -> Code:
        if model is None:
            return Code.FUND_UNKNOWN_CAMPAIGN
        if model.manager != key.public_key:
            return Code.FUND_NOT_MANAGER
        return Code.OK

    @invariant()
    def committed_money_matches_the_model_when_no_tx_is_pending(self) -> None:
        if self.pending:
            return
        for campaign_id in CAMPAIGNS:
            answer = self.chain.query("fund/campaign", {"id": campaign_id})
            model = self.campaigns.get(campaign_id)
            assert answer.found == (model is not None)
            if model is None:
                continue
            value = answer.value
            got = (value["total_in"], value["balance"], value["escrowed"], value["spent"])
            assert got == (model.total_in, model.balance, model.escrowed, model.spent)
            assert value["paid"] == model.paid
            assert min(got) >= 0
            assert value["total_in"] == sum(got[1:]) + value["paid"]
        for contract_id, contract in self.contracts.items():
            value = self.chain.query("fund/contract", {"id": contract_id}).value
            assert [m["status"] for m in value["milestones"]] == [
                s for _, _, s in contract.milestones
            ]

    def teardown(self) -> None:
        self.flush()
        self.committed_money_matches_the_model_when_no_tx_is_pending()


FundMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFundModel = FundMachine.TestCase
