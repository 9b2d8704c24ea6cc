"""Activity rewards (issue 7 part A): every rule of reward.award, reward.transfer and
reward.redeem, through real blocks; supply at any height; events."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services import reward
from services.app import SeoulApplication
from services.codes import Code
from services.genesis import Agency, ServicesGenesis
from services.interface import QueryError
from services.router import REPLAY_PREFIX
from services.service_fields import U64_MAX
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

METER = SigningKey.from_secret(b"power meter gateway")
SHOP = SigningKey.from_secret(b"eco shop")
LIBRARY = SigningKey.from_secret(b"library, not a merchant")
KIM = SigningKey.from_secret(b"kim")
LEE = SigningKey.from_secret(b"lee")


@pytest.fixture
def chain() -> AppHarness:
    genesis = ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Meters", public_key=METER.public_key, roles=(reward.ISSUER_ROLE,)),
            Agency(name="Eco Shop", public_key=SHOP.public_key, roles=(reward.MERCHANT_ROLE,)),
            Agency(name="Library", public_key=LIBRARY.public_key, roles=("notary",)),
        ),
    )
    return AppHarness(SeoulApplication(genesis), chain_id=CHAIN_ID)


def award(record_id: str, points: int, holder: SigningKey = KIM, key: SigningKey = METER) -> Tx:
    body = reward.encode_award(record_id, holder.public_key, points, "electricity-saving")
    return sign(key, "reward.award", body)


def transfer(sender: SigningKey, to: SigningKey, points: int) -> Tx:
    return sign(sender, "reward.transfer", reward.encode_transfer(to.public_key, points))


def redeem(holder: SigningKey, points: int, merchant: SigningKey = SHOP) -> Tx:
    return sign(holder, "reward.redeem", reward.encode_redeem(merchant.public_key, points))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def points(chain: AppHarness, holder: SigningKey) -> int:
    value: int = chain.query("reward/balance", {"holder": holder.public_key.hex()}).value["points"]
    return value


def supply(chain: AppHarness, height: int | None = None) -> Any:
    query = {} if height is None else {"height": str(height)}
    return chain.query("reward/supply", query).value


def test_award_credits_the_holder_and_the_supply(chain: AppHarness) -> None:
    tx = award("meter-7:2026-05", 120)
    outcome = chain.run_block([tx], time_ms=9_000)
    assert codes(outcome.results) == [Code.OK]
    assert points(chain, KIM) == 120
    assert supply(chain) == {
        "height": None,
        "changed_height": 1,
        "awarded": 120,
        "redeemed": 0,
        "supply": 120,
    }
    assert chain.query("reward/record", {"id": "meter-7:2026-05"}).found
    assert outcome.events[0].attributes == (
        ("reward.record", "meter-7:2026-05"),
        ("reward.holder", KIM.public_key.hex()),
        ("reward.points", "120"),
        ("reward.activity", "electricity-saving"),
    )


def test_award_record_is_kept_with_its_tx(chain: AppHarness) -> None:
    tx = award("m-1", 5)
    chain.run_block([tx])
    value = chain.query("reward/record", {"id": "m-1"}).value
    assert value["issuer"] == METER.public_key.hex()
    assert (value["points"], value["height"], value["tx_hash"]) == (5, 1, tx.hash().hex())


def test_each_activity_record_counts_once(chain: AppHarness) -> None:
    outcome = chain.run_block([award("m-1", 10), award("m-1", 10, holder=LEE)])
    assert codes(outcome.results) == [Code.OK, Code.REWARD_DUPLICATE_RECORD]
    later = award("m-1", 99)
    outcome = chain.run_block([later])
    assert codes(outcome.results) == [Code.REWARD_DUPLICATE_RECORD]
    assert list(outcome.writes) == [REPLAY_PREFIX + later.replay_key]
    assert (points(chain, KIM), points(chain, LEE), supply(chain)["supply"]) == (10, 0, 10)


def test_only_issuers_award(chain: AppHarness) -> None:
    outcome = chain.run_block([award("a", 1, key=SHOP), award("b", 1, key=KIM)])
    assert codes(outcome.results) == [Code.UNAUTHORIZED, Code.UNAUTHORIZED]


def test_awards_cannot_overflow_the_supply(chain: AppHarness) -> None:
    chain.run_block([award("a", U64_MAX)])
    outcome = chain.run_block([award("b", 1, holder=LEE)])
    assert codes(outcome.results) == [Code.REWARD_OVERFLOW]
    assert supply(chain)["supply"] == U64_MAX


def test_holder_transfers_points(chain: AppHarness) -> None:
    chain.run_block([award("a", 50)])
    outcome = chain.run_block([transfer(KIM, LEE, 20)])
    assert codes(outcome.results) == [Code.OK]
    assert (points(chain, KIM), points(chain, LEE)) == (30, 20)
    assert supply(chain)["supply"] == 50, "transfers do not change the supply"
    assert ("reward.to", LEE.public_key.hex()) in outcome.events[0].attributes


def test_transfer_rules(chain: AppHarness) -> None:
    chain.run_block([award("a", 50)])
    attempts = [transfer(KIM, LEE, 51), transfer(KIM, KIM, 1), transfer(LEE, KIM, 1)]
    outcome = chain.run_block(attempts)
    assert codes(outcome.results) == [
        Code.REWARD_INSUFFICIENT_POINTS,
        Code.REWARD_SELF_TRANSFER,
        Code.REWARD_INSUFFICIENT_POINTS,
    ]
    assert (points(chain, KIM), points(chain, LEE)) == (50, 0)


def test_spending_the_whole_balance_leaves_no_row(chain: AppHarness) -> None:
    chain.run_block([award("a", 50)])
    outcome = chain.run_block([transfer(KIM, LEE, 50)])
    assert outcome.writes[reward.BALANCE_PREFIX + KIM.public_key] is None
    assert points(chain, KIM) == 0


def test_redeem_at_a_merchant_burns_points(chain: AppHarness) -> None:
    chain.run_block([award("a", 50)])
    outcome = chain.run_block([redeem(KIM, 30)])
    assert codes(outcome.results) == [Code.OK]
    assert points(chain, KIM) == 20
    assert points(chain, SHOP) == 0, "the merchant gets no points: redeemed points leave"
    assert supply(chain) == {
        "height": None,
        "changed_height": 2,
        "awarded": 50,
        "redeemed": 30,
        "supply": 20,
    }
    assert ("reward.merchant", "Eco Shop") in outcome.events[0].attributes


def test_redeem_rules(chain: AppHarness) -> None:
    chain.run_block([award("a", 50)])
    outcome = chain.run_block(
        [redeem(KIM, 1, merchant=LIBRARY), redeem(KIM, 1, merchant=LEE), redeem(KIM, 51)]
    )
    assert codes(outcome.results) == [
        Code.REWARD_NOT_MERCHANT,
        Code.REWARD_NOT_MERCHANT,
        Code.REWARD_INSUFFICIENT_POINTS,
    ]
    assert supply(chain)["supply"] == 50


def test_a_merchant_cannot_redeem_a_holders_points(chain: AppHarness) -> None:
    """The redeem is signed by the holder: a merchant signing one spends its own points."""
    chain.run_block([award("a", 50)])
    outcome = chain.run_block([redeem(SHOP, 10)])
    assert codes(outcome.results) == [Code.REWARD_INSUFFICIENT_POINTS]
    assert points(chain, KIM) == 50


def test_supply_at_any_height(chain: AppHarness) -> None:
    chain.run_block([award("a", 10)])  # height 1
    chain.run_block([award("b", 5)])  # height 2
    chain.run_block([transfer(KIM, LEE, 3)])  # height 3: supply unchanged
    chain.run_block([redeem(KIM, 4)])  # height 4
    chain.run_block([award("c", 1), redeem(LEE, 3)])  # height 5: two changes, one snapshot
    expected = {0: 0, 1: 10, 2: 15, 3: 15, 4: 11, 5: 9, 6: 9, U64_MAX: 9}
    for height, amount in expected.items():
        answer = supply(chain, height)
        assert answer["supply"] == amount, height
        assert answer["height"] == height
        assert answer["supply"] == answer["awarded"] - answer["redeemed"]
    assert supply(chain, 3)["changed_height"] == 2


def test_queries_refuse_bad_params(chain: AppHarness) -> None:
    for path, query in [
        ("reward/balance", {"holder": "zz"}),
        ("reward/balance", {}),
        ("reward/record", {"id": "a b"}),
        ("reward/supply", {"height": "-1"}),
        ("reward/supply", {"height": str(2**64)}),
        ("reward/supply", {"at": "1"}),
    ]:
        with pytest.raises(QueryError):
            chain.query(path, query)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("reward.award", {"record_id": "a", "holder": bytes(32), "points": 0, "activity": "x"}),
        ("reward.award", {"record_id": "a", "holder": bytes(32), "points": 1, "activity": ""}),
        ("reward.award", {"record_id": "a", "holder": bytes(31), "points": 1, "activity": "x"}),
        ("reward.transfer", {"to": bytes(32), "points": -1}),
        ("reward.transfer", {"to": bytes(32), "points": 1.0}),
        ("reward.redeem", {"merchant": bytes(32), "points": 1, "extra": 1}),
    ],
)
def test_bad_bodies_are_body_invalid(chain: AppHarness, kind: str, body: dict[str, Any]) -> None:
    outcome = chain.run_block([sign(METER, kind, body)])
    assert codes(outcome.results) == [Code.BODY_INVALID]
