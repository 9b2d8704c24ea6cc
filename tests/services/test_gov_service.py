"""Governance (issue 7): a genesis council adds and removes agencies, sets roles and
rotates keys by threshold approval; the router's role checks see the change at once."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services import limits
from services.app import SeoulApplication
from services.codes import Code
from services.credential import credential_id, encode_issue
from services.credential import encode_revoke as encode_credential_revoke
from services.genesis import Agency, ServicesGenesis
from services.gov import (
    AddAgency,
    Change,
    RemoveAgency,
    RotateKey,
    SetRoles,
    encode_approve,
    encode_propose,
)
from services.interface import QueryError
from services.notary import encode_anchor, encode_revoke
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, doc, sign

COUNCIL = [SigningKey.from_secret(f"council-{i}".encode()) for i in range(3)]
CITY = SigningKey.from_secret(b"city")
CITY_NEW = SigningKey.from_secret(b"city-2027")
DISTRICT = SigningKey.from_secret(b"district")
NEWCOMER = SigningKey.from_secret(b"newcomer")
OUTSIDER = SigningKey.from_secret(b"outsider")


def genesis(threshold: int = 2) -> ServicesGenesis:
    return ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Seoul City", public_key=CITY.public_key, roles=("notary",)),
            Agency(name="Gangnam-gu", public_key=DISTRICT.public_key, roles=()),
        ),
        council=tuple(member.public_key for member in COUNCIL),
        council_threshold=threshold,
    )


@pytest.fixture
def chain() -> AppHarness:
    return AppHarness(SeoulApplication(genesis()), chain_id=CHAIN_ID)


def propose(proposal_id: str, change: Change, key: SigningKey = COUNCIL[0]) -> Tx:
    return sign(key, "gov.propose", encode_propose(proposal_id, change))


def approve(proposal_id: str, key: SigningKey = COUNCIL[1]) -> Tx:
    return sign(key, "gov.approve", encode_approve(proposal_id))


def anchor(key: SigningKey, name: str) -> Tx:
    return sign(key, "notary.anchor", encode_anchor(doc(name), "certificate"))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def run(chain: AppHarness, *txs: Tx) -> list[int]:
    return codes(chain.run_block(list(txs)).results)


def agencies(chain: AppHarness) -> dict[str, Any]:
    listed = chain.query("agency/list", {}).value["agencies"]
    return {entry["name"]: entry for entry in listed}


def test_change_applies_when_approvals_reach_the_threshold(chain: AppHarness) -> None:
    change = SetRoles(name="Gangnam-gu", roles=["notary"])
    assert run(chain, propose("p1", change), anchor(DISTRICT, "a")) == [
        Code.OK,
        Code.UNAUTHORIZED,
    ]
    assert chain.query("gov/proposal", {"id": "p1"}).value["status"] == "pending"
    outcome = chain.run_block([approve("p1"), anchor(DISTRICT, "b")])
    assert codes(outcome.results) == [Code.OK, Code.OK], "the role holds from the next tx on"
    assert outcome.results[0].log == "applied"
    assert ("gov.applied", "true") in outcome.events[0].attributes
    proposal = chain.query("gov/proposal", {"id": "p1"}).value
    assert proposal["status"] == "applied"
    assert proposal["applied_height"] == 2
    assert proposal["approvals"] == [COUNCIL[0].public_key.hex(), COUNCIL[1].public_key.hex()]
    assert agencies(chain)["Gangnam-gu"]["roles"] == ["notary"]


def test_propose_and_approve_rules(chain: AppHarness) -> None:
    change = SetRoles(name="Gangnam-gu", roles=["notary"])
    outcome = run(
        chain,
        propose("p1", change, key=OUTSIDER),
        propose("p1", change, key=CITY),
        propose("p1", change),
        propose("p1", change, key=COUNCIL[2]),
        approve("p1", key=COUNCIL[0]),
        approve("p2"),
        approve("p1", key=OUTSIDER),
        approve("p1"),
        approve("p1", key=COUNCIL[2]),
    )
    assert outcome == [
        Code.GOV_NOT_COUNCIL,
        Code.GOV_NOT_COUNCIL,
        Code.OK,
        Code.GOV_DUPLICATE_PROPOSAL,
        Code.GOV_ALREADY_APPROVED,
        Code.GOV_UNKNOWN_PROPOSAL,
        Code.GOV_NOT_COUNCIL,
        Code.OK,
        Code.GOV_ALREADY_APPLIED,
    ]


def test_add_agency_rules_and_effect(chain: AppHarness) -> None:
    outcome = run(
        chain,
        propose("dup-name", AddAgency(name="Seoul City", public_key=NEWCOMER.public_key, roles=[])),
        propose("dup-key", AddAgency(name="Busan", public_key=CITY.public_key, roles=[])),
        propose(
            "bad-roles", AddAgency(name="Busan", public_key=NEWCOMER.public_key, roles=["a", "a"])
        ),
        propose("add", AddAgency(name="Mapo-gu", public_key=NEWCOMER.public_key, roles=["notary"])),
        anchor(NEWCOMER, "before"),
        approve("add"),
        anchor(NEWCOMER, "after"),
    )
    assert outcome == [
        Code.GOV_AGENCY_EXISTS,
        Code.GOV_KEY_IN_USE,
        Code.GOV_BAD_ROLES,
        Code.OK,
        Code.UNAUTHORIZED,
        Code.OK,
        Code.OK,
    ]
    assert agencies(chain)["Mapo-gu"]["public_key"] == NEWCOMER.public_key.hex()


def test_remove_agency_and_the_last_agency_rule() -> None:
    chain = AppHarness(SeoulApplication(genesis(threshold=1)), chain_id=CHAIN_ID)
    assert run(chain, propose("rm", RemoveAgency(name="Seoul City")), anchor(CITY, "x")) == [
        Code.OK,
        Code.UNAUTHORIZED,
    ]
    assert set(agencies(chain)) == {"Gangnam-gu"}
    assert run(
        chain,
        propose("rm-again", RemoveAgency(name="Seoul City")),
        propose("rm-last", RemoveAgency(name="Gangnam-gu")),
    ) == [Code.GOV_UNKNOWN_AGENCY, Code.GOV_LAST_AGENCY]


def test_key_rotation_without_downtime(chain: AppHarness) -> None:
    """Old key signs until the rotation executes; from then only the new key does, and it
    may revoke what the old key anchored (same agency)."""
    rotate = RotateKey(name="Seoul City", new_public_key=CITY_NEW.public_key)
    assert run(chain, anchor(CITY, "old-doc"), propose("rot", rotate)) == [Code.OK, Code.OK]
    assert run(chain, anchor(CITY, "still-old"), anchor(CITY_NEW, "too-early")) == [
        Code.OK,
        Code.UNAUTHORIZED,
    ]
    signed_before = anchor(CITY, "in-flight")  # signed with the old key, included late
    outcome = run(chain, anchor(CITY, "same-block"), approve("rot"), signed_before)
    assert outcome == [Code.OK, Code.OK, Code.UNAUTHORIZED]
    revoke = sign(CITY_NEW, "notary.revoke", encode_revoke(doc("old-doc"), "reissued"))
    assert run(chain, anchor(CITY_NEW, "new-doc"), revoke) == [Code.OK, Code.OK]
    listed = agencies(chain)["Seoul City"]
    assert listed["public_key"] == CITY_NEW.public_key.hex()
    assert listed["roles"] == ["notary"]


def test_rotation_to_a_key_in_use_or_of_an_unknown_agency_is_refused(chain: AppHarness) -> None:
    assert run(
        chain,
        propose("r1", RotateKey(name="Seoul City", new_public_key=DISTRICT.public_key)),
        propose("r2", RotateKey(name="Busan", new_public_key=NEWCOMER.public_key)),
        propose("r3", SetRoles(name="Busan", roles=[])),
    ) == [Code.GOV_KEY_IN_USE, Code.GOV_UNKNOWN_AGENCY, Code.GOV_UNKNOWN_AGENCY]


def test_change_is_rechecked_when_applied(chain: AppHarness) -> None:
    """Two proposals both add a key; the second to reach its threshold no longer fits and
    its approval is refused, changing nothing."""
    first = AddAgency(name="Mapo-gu", public_key=NEWCOMER.public_key, roles=[])
    second = AddAgency(name="Jung-gu", public_key=NEWCOMER.public_key, roles=[])
    assert run(chain, propose("a", first), propose("b", second)) == [Code.OK, Code.OK]
    assert run(chain, approve("a"), approve("b")) == [Code.OK, Code.GOV_KEY_IN_USE]
    assert "Jung-gu" not in agencies(chain)
    assert chain.query("gov/proposal", {"id": "b"}).value["status"] == "pending"


def test_registry_size_is_bounded() -> None:
    many = tuple(
        Agency(
            name=f"a{i}", public_key=SigningKey.from_secret(f"a{i}".encode()).public_key, roles=()
        )
        for i in range(limits.agencies_max)
    )
    full = ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=many,
        council=(COUNCIL[0].public_key,),
        council_threshold=1,
    )
    chain = AppHarness(SeoulApplication(full), chain_id=CHAIN_ID)
    add = AddAgency(name="one-more", public_key=NEWCOMER.public_key, roles=[])
    assert run(chain, propose("x", add)) == [Code.GOV_TOO_MANY_AGENCIES]


def test_invalid_council_is_refused_at_start() -> None:
    base = genesis()
    for council, threshold in (
        (base.council, 0),
        (base.council, 4),
        ((), 1),
        ((COUNCIL[0].public_key, COUNCIL[0].public_key), 1),
        ((b"short",), 1),
    ):
        bad = ServicesGenesis(
            chain_id=CHAIN_ID, agencies=base.agencies, council=council, council_threshold=threshold
        )
        with pytest.raises(ValueError, match="invalid services genesis"):
            SeoulApplication(bad)


def test_no_council_means_no_governance() -> None:
    plain = ServicesGenesis(chain_id=CHAIN_ID, agencies=genesis().agencies)
    chain = AppHarness(SeoulApplication(plain), chain_id=CHAIN_ID)
    assert run(chain, propose("p", SetRoles(name="Seoul City", roles=[]))) == [Code.GOV_NOT_COUNCIL]


def test_queries(chain: AppHarness) -> None:
    council = chain.query("gov/council", {}).value
    assert council == {"members": [m.public_key.hex() for m in COUNCIL], "threshold": 2}
    ids = [f"p{i}" for i in range(5)]
    run(chain, *(propose(pid, SetRoles(name="Gangnam-gu", roles=[pid])) for pid in ids))
    seen: list[str] = []
    after = ""
    for _ in range(10):
        query = {"limit": "2", **({"after": after} if after else {})}
        value = chain.query("gov/proposals", query).value
        seen += [entry["proposal_id"] for entry in value["proposals"]]
        if value["next"] is None:
            break
        after = value["next"]
    assert seen == ids
    first = chain.query("gov/proposal", {"id": "p0"}).value
    assert first["change"] == {"action": "set_roles", "name": "Gangnam-gu", "roles": ["p0"]}
    assert not chain.query("gov/proposal", {"id": "nope"}).found
    for bad in ({"id": "bad id"}, {}, {"id": "p0", "x": "1"}):
        with pytest.raises(QueryError):
            chain.query("gov/proposal", bad)


def test_malformed_changes_are_body_invalid(chain: AppHarness) -> None:
    bodies = [
        {"proposal_id": "p", "change": {"action": "dissolve_council", "name": "x"}},
        {"proposal_id": "p", "change": {"action": "set_roles", "name": "x", "roles": ["Bad"]}},
        {"proposal_id": "p", "change": {"name": "x"}},
        {"proposal_id": "p", "change": {"action": "remove_agency", "name": "x", "extra": 1}},
        {
            "proposal_id": "p",
            "change": {"action": "set_roles", "name": "x", "roles": ["r"] * 17},
        },
    ]
    txs = [sign(COUNCIL[0], "gov.propose", body) for body in bodies]
    assert run(chain, *txs) == [Code.BODY_INVALID] * len(bodies)


def test_rotated_agency_revokes_credentials_issued_under_its_old_key() -> None:
    issuer = ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Licensing", public_key=CITY.public_key, roles=("credential_issuer",)),
            Agency(name="Other", public_key=DISTRICT.public_key, roles=("credential_issuer",)),
        ),
        council=(COUNCIL[0].public_key,),
        council_threshold=1,
    )
    chain = AppHarness(SeoulApplication(issuer), chain_id=CHAIN_ID)
    body = encode_issue(
        cred_type="nurse", holder=OUTSIDER.public_key, serial="1", valid_from_ms=0,
        valid_until_ms=10**12,
    )  # fmt: skip
    ident = credential_id(
        issuer=CITY.public_key, holder=OUTSIDER.public_key, cred_type="nurse", serial="1"
    )
    rotate = RotateKey(name="Licensing", new_public_key=CITY_NEW.public_key)
    assert run(chain, sign(CITY, "credential.issue", body), propose("rot", rotate)) == [
        Code.OK,
        Code.OK,
    ]
    other = sign(DISTRICT, "credential.revoke", encode_credential_revoke(ident, "not mine"))
    own = sign(CITY_NEW, "credential.revoke", encode_credential_revoke(ident, "reissued"))
    assert run(chain, other, own) == [Code.CREDENTIAL_NOT_ISSUER, Code.OK]
