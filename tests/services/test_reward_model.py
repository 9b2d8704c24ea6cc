"""Activity rewards against a model (hypothesis state machine): random awards (with
repeated record ids), transfers and redeems, several txs per block. Every result code must
match the model's; after every block each balance matches, and the supply equals awards
minus redemptions and the sum of all balances — at the current height and, read back
through `reward/supply?height=`, at every earlier height too.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocol.crypto import SigningKey
from protocol.tx import Tx
from services import reward
from services.app import SeoulApplication
from services.codes import Code
from services.genesis import Agency, ServicesGenesis
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

ISSUER = SigningKey.from_secret(b"model issuer")
MERCHANT = SigningKey.from_secret(b"model merchant")
HOLDERS = tuple(SigningKey.from_secret(f"model holder {i}".encode()) for i in range(3))
# A merchant may also hold points (it is a key like any other).
ACCOUNTS = (*HOLDERS, MERCHANT)
BLOCK_TXS_MAX = 4
points = st.integers(min_value=1, max_value=300)
accounts = st.integers(0, len(ACCOUNTS) - 1)


class RewardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        genesis = ServicesGenesis(
            chain_id=CHAIN_ID,
            agencies=(
                Agency(name="issuer", public_key=ISSUER.public_key, roles=(reward.ISSUER_ROLE,)),
                Agency(
                    name="merchant", public_key=MERCHANT.public_key, roles=(reward.MERCHANT_ROLE,)
                ),
            ),
        )
        self.chain = AppHarness(SeoulApplication(genesis), chain_id=CHAIN_ID)
        self.balances = [0] * len(ACCOUNTS)
        self.records: set[str] = set()
        self.awarded = 0
        self.redeemed = 0
        self.supply_by_height: dict[int, int] = {0: 0}
        self.pending: list[tuple[Tx, Code]] = []

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
        self.supply_by_height[self.chain.height] = self.awarded - self.redeemed

    @rule(record=st.integers(0, 15), holder=accounts, amount=points)
    def award(self, record: int, holder: int, amount: int) -> None:
        record_id = f"rec-{record}"
        body = reward.encode_award(record_id, ACCOUNTS[holder].public_key, amount, "walk")
        tx = sign(ISSUER, "reward.award", body)
        if record_id in self.records:
            self._submit(tx, Code.REWARD_DUPLICATE_RECORD)
            return
        self.records.add(record_id)
        self.balances[holder] += amount
        self.awarded += amount
        self._submit(tx, Code.OK)

    @rule(sender=accounts, receiver=accounts, amount=points)
    def transfer(self, sender: int, receiver: int, amount: int) -> None:
        body = reward.encode_transfer(ACCOUNTS[receiver].public_key, amount)
        tx = sign(ACCOUNTS[sender], "reward.transfer", body)
        if sender == receiver:
            self._submit(tx, Code.REWARD_SELF_TRANSFER)
        elif amount > self.balances[sender]:
            self._submit(tx, Code.REWARD_INSUFFICIENT_POINTS)
        else:
            self.balances[sender] -= amount
            self.balances[receiver] += amount
            self._submit(tx, Code.OK)

    @rule(holder=accounts, at_merchant=st.booleans(), amount=points)
    def redeem(self, holder: int, at_merchant: bool, amount: int) -> None:
        merchant = MERCHANT if at_merchant else HOLDERS[0]
        tx = sign(
            ACCOUNTS[holder], "reward.redeem", reward.encode_redeem(merchant.public_key, amount)
        )
        if not at_merchant:
            self._submit(tx, Code.REWARD_NOT_MERCHANT)
        elif amount > self.balances[holder]:
            self._submit(tx, Code.REWARD_INSUFFICIENT_POINTS)
        else:
            self.balances[holder] -= amount
            self.redeemed += amount
            self._submit(tx, Code.OK)

    @invariant()
    def committed_points_match_the_model_when_no_tx_is_pending(self) -> None:
        if self.pending:
            return
        for key, expected in zip(ACCOUNTS, self.balances, strict=True):
            answer = self.chain.query("reward/balance", {"holder": key.public_key.hex()})
            assert answer.value["points"] == expected
        supply = self.chain.query("reward/supply", {}).value
        assert (supply["awarded"], supply["redeemed"]) == (self.awarded, self.redeemed)
        assert supply["supply"] == self.awarded - self.redeemed == sum(self.balances)
        for height, expected in self.supply_by_height.items():
            past = self.chain.query("reward/supply", {"height": str(height)}).value
            assert past["supply"] == expected, height

    def teardown(self) -> None:
        self.flush()
        self.committed_points_match_the_model_when_no_tx_is_pending()


RewardMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRewardModel = RewardMachine.TestCase
