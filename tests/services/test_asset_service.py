"""Asset history (issue 7 part A): every rule of asset.register, asset.record and
asset.transfer, through real blocks; history paging; the owner index; events."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services import asset
from services.app import SeoulApplication
from services.codes import Code
from services.genesis import Agency, ServicesGenesis
from services.interface import QueryError
from services.router import REPLAY_PREFIX
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

REGISTRY = SigningKey.from_secret(b"vehicle registry")
INSPECTOR = SigningKey.from_secret(b"inspection centre")
NOTARY_ONLY = SigningKey.from_secret(b"notary only")
KIM = SigningKey.from_secret(b"kim")
LEE = SigningKey.from_secret(b"lee")
PARK = SigningKey.from_secret(b"park")
VIN = "KMHXX00XXXX000001"


@pytest.fixture
def chain() -> AppHarness:
    genesis = ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Vehicle Registry", public_key=REGISTRY.public_key, roles=(asset.ROLE,)),
            Agency(name="Inspection", public_key=INSPECTOR.public_key, roles=(asset.ROLE,)),
            Agency(name="Notary", public_key=NOTARY_ONLY.public_key, roles=("notary",)),
        ),
    )
    return AppHarness(SeoulApplication(genesis), chain_id=CHAIN_ID)


def register(asset_id: str = VIN, owner: SigningKey = KIM, odometer_km: int = 10) -> Tx:
    body = asset.encode_register(asset_id, owner.public_key, odometer_km=odometer_km)
    return sign(REGISTRY, "asset.register", body)


def record(event: str, odometer_km: int | None = None, key: SigningKey = INSPECTOR) -> Tx:
    body = asset.encode_record(VIN, event, description=f"{event} note", odometer_km=odometer_km)
    return sign(key, "asset.record", body)


def transfer(signer: SigningKey, new_owner: SigningKey, odometer_km: int | None = None) -> Tx:
    body = asset.encode_transfer(VIN, new_owner.public_key, odometer_km=odometer_km)
    return sign(signer, "asset.transfer", body)


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def get(chain: AppHarness, asset_id: str = VIN) -> Any:
    answer = chain.query("asset/get", {"id": asset_id})
    return answer.value if answer.found else None


def history(chain: AppHarness, **query: str) -> Any:
    return chain.query("asset/history", {"id": VIN, **query}).value


def asset_keys(writes: Any) -> list[bytes]:
    return [key for key in writes if key.startswith(b"asset/")]


def test_register_records_owner_odometer_and_first_event(chain: AppHarness) -> None:
    tx = register(odometer_km=12)
    outcome = chain.run_block([tx], time_ms=5_000)
    assert codes(outcome.results) == [Code.OK]
    assert get(chain) == {
        "asset_id": VIN,
        "owner": KIM.public_key.hex(),
        "odometer_km": 12,
        "events": 1,
        "registered_height": 1,
        "registrar": REGISTRY.public_key.hex(),
    }
    (event,) = history(chain)["events"]
    assert event["event"] == "registration"
    assert (event["height"], event["tx_index"], event["time_ms"]) == (1, 0, 5_000)
    assert event["tx_hash"] == tx.hash().hex()
    assert outcome.events[0].attributes == (
        ("asset.id", VIN),
        ("asset.event", "registration"),
        ("asset.owner", KIM.public_key.hex()),
    )


def test_register_twice_refused_changing_nothing(chain: AppHarness) -> None:
    chain.run_block([register()])
    before = get(chain)
    again = register(owner=LEE)
    outcome = chain.run_block([again])
    assert codes(outcome.results) == [Code.ASSET_ALREADY_REGISTERED]
    assert list(outcome.writes) == [REPLAY_PREFIX + again.replay_key]
    assert get(chain) == before


def test_only_registrars_register_or_record(chain: AppHarness) -> None:
    body = asset.encode_register(VIN, KIM.public_key)
    by_notary = sign(NOTARY_ONLY, "asset.register", body)
    by_citizen = sign(KIM, "asset.register", body)
    outcome = chain.run_block([by_notary, by_citizen, register(), record("repair", key=KIM)])
    assert codes(outcome.results) == [
        Code.UNAUTHORIZED,
        Code.UNAUTHORIZED,
        Code.OK,
        Code.UNAUTHORIZED,
    ]


def test_record_of_unknown_asset_refused(chain: AppHarness) -> None:
    outcome = chain.run_block([record("inspection", 100), transfer(KIM, LEE)])
    assert codes(outcome.results) == [Code.ASSET_UNKNOWN, Code.ASSET_UNKNOWN]
    assert asset_keys(outcome.writes) == []


def test_inspection_needs_an_odometer_reading(chain: AppHarness) -> None:
    chain.run_block([register()])
    outcome = chain.run_block([record("inspection"), record("accident"), record("repair")])
    assert codes(outcome.results) == [Code.ASSET_ODOMETER_REQUIRED, Code.OK, Code.OK]


def test_odometer_never_goes_backwards(chain: AppHarness) -> None:
    chain.run_block([register(odometer_km=100)])
    outcome = chain.run_block(
        [
            record("inspection", 99),
            record("inspection", 100),  # equal is fine: a car parked between inspections
            record("inspection", 5_000),
            record("repair", 4_999),
            transfer(KIM, LEE, odometer_km=10),
        ]
    )
    assert codes(outcome.results) == [
        Code.ASSET_ODOMETER_BACKWARDS,
        Code.OK,
        Code.OK,
        Code.ASSET_ODOMETER_BACKWARDS,
        Code.ASSET_ODOMETER_BACKWARDS,
    ]
    assert get(chain)["odometer_km"] == 5_000
    assert get(chain)["owner"] == KIM.public_key.hex()


def test_event_without_reading_keeps_the_last_reading(chain: AppHarness) -> None:
    chain.run_block([register(odometer_km=700), record("accident")])
    assert get(chain)["odometer_km"] == 700
    assert history(chain)["events"][1]["odometer_km"] is None


def test_owner_consents_to_transfer(chain: AppHarness) -> None:
    chain.run_block([register()])
    tx = transfer(KIM, LEE, odometer_km=20)
    outcome = chain.run_block([tx])
    assert codes(outcome.results) == [Code.OK]
    assert get(chain)["owner"] == LEE.public_key.hex()
    event = history(chain)["events"][-1]
    assert event["event"] == "transfer"
    assert event["previous_owner"] == KIM.public_key.hex()
    assert event["owner"] == LEE.public_key.hex()
    assert event["signer"] == KIM.public_key.hex()
    assert ("asset.owner", LEE.public_key.hex()) in outcome.events[0].attributes


def test_registrar_may_transfer_without_owner(chain: AppHarness) -> None:
    chain.run_block([register()])
    outcome = chain.run_block([transfer(INSPECTOR, PARK)])
    assert codes(outcome.results) == [Code.OK]
    assert get(chain)["owner"] == PARK.public_key.hex()


def test_stranger_or_former_owner_cannot_transfer(chain: AppHarness) -> None:
    chain.run_block([register(), transfer(KIM, LEE)])
    outcome = chain.run_block(
        [transfer(KIM, PARK), transfer(PARK, PARK), transfer(NOTARY_ONLY, KIM)]
    )
    assert codes(outcome.results) == [Code.ASSET_NOT_OWNER] * 3
    assert asset_keys(outcome.writes) == []
    assert get(chain)["owner"] == LEE.public_key.hex()


def test_transfer_to_current_owner_refused(chain: AppHarness) -> None:
    chain.run_block([register()])
    outcome = chain.run_block([transfer(KIM, KIM)])
    assert codes(outcome.results) == [Code.ASSET_SAME_OWNER]


def test_owner_index_follows_transfers(chain: AppHarness) -> None:
    chain.run_block([register(), register("CAR-2", owner=KIM), transfer(KIM, LEE)])
    kim = chain.query("asset/owner", {"owner": KIM.public_key.hex()}).value
    lee = chain.query("asset/owner", {"owner": LEE.public_key.hex()}).value
    assert kim == {"owner": KIM.public_key.hex(), "assets": ["CAR-2"], "next": None}
    assert lee["assets"] == [VIN]


def test_history_is_time_ordered_and_pages_without_gaps(chain: AppHarness) -> None:
    chain.run_block([register(odometer_km=0)])
    for reading in range(1, 8):
        chain.run_block([record("inspection", reading * 1_000)])
    seen: list[int] = []
    cursor: str | None = ""
    pages = 0
    while cursor is not None:
        answer = history(chain, limit="3", after=cursor)
        seen += [event["seq"] for event in answer["events"]]
        heights = [event["height"] for event in answer["events"]]
        assert heights == sorted(heights)
        cursor = answer["next"]
        pages += 1
    assert seen == list(range(8))
    assert pages == 3


def test_history_events_point_at_provable_txs(chain: AppHarness) -> None:
    """Each event names the height, index and hash of its tx, for `tx` with prove=true."""
    txs = [register(), record("repair")]
    chain.run_block([txs[0]])
    chain.run_block([filler(), txs[1]])
    events = history(chain)["events"]
    assert [(e["height"], e["tx_index"], e["tx_hash"]) for e in events] == [
        (1, 0, txs[0].hash().hex()),
        (2, 1, txs[1].hash().hex()),
    ]


def filler() -> Tx:
    return sign(REGISTRY, "asset.register", asset.encode_register("FILLER", LEE.public_key))


def test_unknown_asset_queries(chain: AppHarness) -> None:
    assert not chain.query("asset/get", {"id": "nope"}).found
    assert not chain.query("asset/history", {"id": "nope"}).found
    empty = chain.query("asset/owner", {"owner": KIM.public_key.hex()}).value
    assert empty["assets"] == []


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("asset/get", {}),
        ("asset/get", {"id": "a/b"}),
        ("asset/get", {"id": "x" * 65}),
        ("asset/get", {"id": VIN, "extra": "1"}),
        ("asset/history", {"id": VIN, "limit": "0"}),
        ("asset/history", {"id": VIN, "after": "zz"}),
        ("asset/owner", {"owner": "00"}),
    ],
)
def test_bad_query_params_raise_query_error(
    chain: AppHarness, path: str, query: dict[str, str]
) -> None:
    chain.run_block([register()])
    with pytest.raises(QueryError):
        chain.query(path, query)


@pytest.mark.parametrize(
    "body",
    [
        {"asset_id": "", "owner": bytes(32)},
        {"asset_id": "has space", "owner": bytes(32)},
        {"asset_id": "x" * 65, "owner": bytes(32)},
        {"asset_id": VIN, "owner": bytes(31)},
        {"asset_id": VIN, "owner": bytes(32), "odometer_km": -1},
        {"asset_id": VIN, "owner": bytes(32), "description": "a\nb"},
        {"asset_id": VIN, "owner": bytes(32), "colour": "red"},
    ],
)
def test_bad_register_bodies_are_body_invalid(chain: AppHarness, body: dict[str, Any]) -> None:
    outcome = chain.run_block([sign(REGISTRY, "asset.register", body)])
    assert codes(outcome.results) == [Code.BODY_INVALID]


def test_record_refuses_event_types_it_does_not_know(chain: AppHarness) -> None:
    chain.run_block([register()])
    for event in ("registration", "transfer", "scrapped"):
        body = {"asset_id": VIN, "event": event}
        assert codes(chain.run_block([sign(INSPECTOR, "asset.record", body)]).results) == [
            Code.BODY_INVALID
        ]


def test_history_full_is_refused(chain: AppHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asset, "events_per_asset_max", 3)
    chain.run_block([register(), record("repair"), record("repair")])
    outcome = chain.run_block([record("repair"), transfer(KIM, LEE)])
    assert codes(outcome.results) == [Code.ASSET_HISTORY_FULL, Code.ASSET_HISTORY_FULL]
    assert get(chain)["events"] == 3


def test_client_encoders_refuse_bad_fields() -> None:
    with pytest.raises(ValueError, match="asset_id"):
        asset.encode_register("bad id", KIM.public_key)
    with pytest.raises(ValueError, match="event"):
        asset.encode_record(VIN, "scrapped")
