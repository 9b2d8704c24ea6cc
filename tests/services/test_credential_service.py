"""Shared credentials (issue 7): issue, revoke, deterministic ids, status at an instant,
holder listing, and verification by any party."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services.app import SeoulApplication
from services.codes import Code
from services.credential import ID_PREFIX, credential_id, encode_issue, encode_revoke
from services.genesis import Agency, ServicesGenesis
from services.interface import QueryError
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

LICENSING = SigningKey.from_secret(b"licensing")
HOSPITAL = SigningKey.from_secret(b"hospital")
AUDITOR = SigningKey.from_secret(b"auditor")
HOLDER = SigningKey.from_secret(b"holder-kim")
OTHER_HOLDER = SigningKey.from_secret(b"holder-lee")
DAY_MS = 86_400_000


def genesis() -> ServicesGenesis:
    return ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Licensing", public_key=LICENSING.public_key, roles=("credential_issuer",)),
            Agency(name="Hospital", public_key=HOSPITAL.public_key, roles=("credential_issuer",)),
            Agency(name="Audit", public_key=AUDITOR.public_key, roles=("auditor",)),
        ),
    )


@pytest.fixture
def chain() -> AppHarness:
    return AppHarness(SeoulApplication(genesis()), chain_id=CHAIN_ID)


def issue(
    key: SigningKey = LICENSING,
    *,
    holder: bytes | None = None,
    cred_type: str = "electrician-licence",
    serial: str = "EL-001",
    valid_from_ms: int = 0,
    valid_until_ms: int = 100 * DAY_MS,
    claims: dict[str, str] | None = None,
) -> Tx:
    body = encode_issue(
        cred_type=cred_type,
        holder=HOLDER.public_key if holder is None else holder,
        serial=serial,
        valid_from_ms=valid_from_ms,
        valid_until_ms=valid_until_ms,
        claims=claims,
    )
    return sign(key, "credential.issue", body)


def the_id(
    key: SigningKey = LICENSING, serial: str = "EL-001", holder: bytes | None = None
) -> bytes:
    return credential_id(
        issuer=key.public_key,
        holder=HOLDER.public_key if holder is None else holder,
        cred_type="electrician-licence",
        serial=serial,
    )


def revoke(key: SigningKey = LICENSING, ident: bytes | None = None) -> Tx:
    return sign(key, "credential.revoke", encode_revoke(ident or the_id(), "licence withdrawn"))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def get(chain: AppHarness, ident: bytes, **extra: str) -> Any:
    answer = chain.query("credential/get", {"id": ident.hex(), **extra})
    return answer.value if answer.found else None


def test_issue_records_the_credential_under_its_deterministic_id(chain: AppHarness) -> None:
    tx = issue(claims={"grade": "1", "area": "Seoul"})
    outcome = chain.run_block([tx], time_ms=DAY_MS)
    assert outcome.results == (TxResult(code=Code.OK, log="issued", data=the_id()),)
    record = get(chain, the_id(), at_ms=str(2 * DAY_MS))
    assert record["issuer"] == LICENSING.public_key.hex()
    assert record["agency"] == "Licensing"
    assert record["holder"] == HOLDER.public_key.hex()
    assert record["claims"] == {"area": "Seoul", "grade": "1"}
    assert list(record["claims"]) == ["area", "grade"]
    assert record["status"] == "valid"
    assert record["tx_hash"] == tx.hash().hex()
    attributes = dict(outcome.events[0].attributes)
    assert attributes["credential.id"] == the_id().hex()
    assert attributes["credential.holder"] == HOLDER.public_key.hex()
    assert attributes["credential.issuer"] == "Licensing"


def test_id_depends_on_issuer_holder_type_and_serial() -> None:
    ids = {
        the_id(),
        the_id(key=HOSPITAL),
        the_id(serial="EL-002"),
        the_id(holder=OTHER_HOLDER.public_key),
        credential_id(
            issuer=LICENSING.public_key,
            holder=HOLDER.public_key,
            cred_type="electrician-licencE",
            serial="EL-001",
        ),
    }
    assert len(ids) == 5
    # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    left = credential_id(issuer=bytes(32), holder=bytes(32), cred_type="ab", serial="c")
    right = credential_id(issuer=bytes(32), holder=bytes(32), cred_type="a", serial="bc")
    assert left != right


def test_same_credential_twice_is_a_duplicate_even_after_revoke(chain: AppHarness) -> None:
    chain.run_block([issue()])
    assert codes(chain.run_block([issue()]).results) == [Code.CREDENTIAL_DUPLICATE]
    chain.run_block([revoke()])
    assert codes(chain.run_block([issue()]).results) == [Code.CREDENTIAL_DUPLICATE]
    assert codes(chain.run_block([issue(serial="EL-002")]).results) == [Code.OK]


def test_window_must_be_ordered_and_end_after_the_block_time(chain: AppHarness) -> None:
    outcome = chain.run_block(
        [
            issue(valid_from_ms=5, valid_until_ms=5),
            issue(valid_from_ms=6, valid_until_ms=5, serial="2"),
            issue(valid_until_ms=DAY_MS, serial="3"),
        ],
        time_ms=DAY_MS,
    )
    assert codes(outcome.results) == [
        Code.CREDENTIAL_BAD_WINDOW,
        Code.CREDENTIAL_BAD_WINDOW,
        Code.CREDENTIAL_EXPIRY_PASSED,
    ]
    assert not any(key.startswith(ID_PREFIX) for key in outcome.writes)


def test_only_credential_issuers_may_issue_or_revoke(chain: AppHarness) -> None:
    stranger = SigningKey.from_secret(b"stranger")
    outcome = chain.run_block([issue(key=AUDITOR), issue(key=stranger), revoke(key=AUDITOR)])
    assert codes(outcome.results) == [Code.UNAUTHORIZED] * 3


def test_revoke_rules(chain: AppHarness) -> None:
    chain.run_block([issue()])
    outcome = chain.run_block(
        [revoke(ident=bytes(32)), revoke(key=HOSPITAL), revoke(), revoke()], time_ms=50 * DAY_MS
    )
    assert codes(outcome.results) == [
        Code.CREDENTIAL_UNKNOWN,
        Code.CREDENTIAL_NOT_ISSUER,
        Code.OK,
        Code.CREDENTIAL_ALREADY_REVOKED,
    ]
    record = get(chain, the_id(), at_ms=str(DAY_MS))
    assert record["status"] == "revoked"
    assert record["revocation"]["reason"] == "licence withdrawn"
    assert record["revocation"]["time_ms"] == 50 * DAY_MS


def test_status_at_an_instant_is_a_half_open_window(chain: AppHarness) -> None:
    chain.run_block([issue(valid_from_ms=10 * DAY_MS, valid_until_ms=20 * DAY_MS)], time_ms=1)
    statuses = [
        get(chain, the_id(), at_ms=str(at))["status"]
        for at in (10 * DAY_MS - 1, 10 * DAY_MS, 20 * DAY_MS - 1, 20 * DAY_MS)
    ]
    assert statuses == ["not_yet_valid", "valid", "valid", "expired"]
    assert get(chain, the_id())["judged_at_ms"] is None


def test_verify_query_checks_holder_type_issuer_and_time(chain: AppHarness) -> None:
    chain.run_block([issue()])
    base = {"id": the_id().hex(), "at_ms": str(DAY_MS)}

    def verdict(**extra: str) -> Any:
        return chain.query("credential/verify", {**base, **extra}).value

    assert verdict(holder=HOLDER.public_key.hex(), issuer="Licensing")["verdict"] == "valid"
    assert verdict(holder=OTHER_HOLDER.public_key.hex())["verdict"] == "wrong_holder"
    assert verdict(cred_type="nurse")["verdict"] == "wrong_type"
    assert verdict(issuer="Hospital")["verdict"] == "wrong_issuer"
    assert verdict(at_ms=str(200 * DAY_MS))["verdict"] == "expired"
    unknown = chain.query("credential/verify", {"id": "00" * 32, "at_ms": "1"})
    assert not unknown.found
    assert unknown.value["verdict"] == "unknown"
    with pytest.raises(QueryError):
        chain.query("credential/verify", {"id": the_id().hex()})


def test_holder_listing_pages_in_issuance_order(chain: AppHarness) -> None:
    serials = [f"S-{i}" for i in range(5)]
    chain.run_block([issue(serial=serial) for serial in serials[:3]])
    chain.run_block([issue(key=HOSPITAL, serial=serial) for serial in serials[3:]])
    chain.run_block([issue(holder=OTHER_HOLDER.public_key, serial="other")])
    seen: list[str] = []
    after = ""
    for _ in range(10):
        query = {"holder": HOLDER.public_key.hex(), "limit": "2"}
        if after:
            query["after"] = after
        value = chain.query("credential/holder", query).value
        seen += [entry["serial"] for entry in value["credentials"]]
        if value["next"] is None:
            break
        after = value["next"]
    assert seen == serials


def test_bad_bodies_and_params(chain: AppHarness) -> None:
    good = {
        "cred_type": "t",
        "holder": HOLDER.public_key,
        "serial": "s",
        "valid_from_ms": 0,
        "valid_until_ms": 10**12,
    }
    bad_bodies = [
        {**good, "holder": b"short"},
        {**good, "claims": {f"k{i}": "v" for i in range(17)}},
        {**good, "serial": ""},
        {**good, "valid_until_ms": -1},
        {**good, "extra": 1},
        {**good, "cred_type": "bad\nline"},
    ]
    outcome = chain.run_block([sign(LICENSING, "credential.issue", body) for body in bad_bodies])
    assert codes(outcome.results) == [Code.BODY_INVALID] * len(bad_bodies)
    for query in ({"id": "zz"}, {"id": "00" * 31}, {"id": "00" * 32, "bogus": "1"}):
        with pytest.raises(QueryError):
            chain.query("credential/get", query)
