"""The document notary (issue 2): anchor and revoke rules, records, events and queries."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services.codes import Code
from services.interface import QueryError
from services.notary import DOC_PREFIX, encode_anchor, encode_revoke
from services.router import REPLAY_PREFIX
from services.testing import AppHarness
from tests.services.services_helpers import CITY, DISTRICT, doc, sign


def anchor(
    key: SigningKey = CITY,
    name: str = "a",
    doc_type: str = "certificate",
    metadata: dict[str, str] | None = None,
) -> Tx:
    return sign(key, "notary.anchor", encode_anchor(doc(name), doc_type, metadata))


def revoke(key: SigningKey = CITY, name: str = "a", reason: str = "issued in error") -> Tx:
    return sign(key, "notary.revoke", encode_revoke(doc(name), reason))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def document(chain: AppHarness, name: str) -> Any:
    answer = chain.query("notary/document", {"hash": doc(name).hex()})
    return answer.value if answer.found else None


def test_anchor_records_issuer_metadata_height_time_and_tx(chain: AppHarness) -> None:
    tx = anchor(metadata={"z-last": "2", "applicant": "Kim"}, doc_type="주민등록등본")
    outcome = chain.run_block([tx], time_ms=1_700_000_000_000)
    assert outcome.results == (TxResult(code=Code.OK, log="anchored", data=doc("a")),)
    record = document(chain, "a")
    assert record == {
        "document_hash": doc("a").hex(),
        "issuer": CITY.public_key.hex(),
        "agency": "Seoul City",
        "doc_type": "주민등록등본",
        "metadata": {"applicant": "Kim", "z-last": "2"},
        "height": 1,
        "time_ms": 1_700_000_000_000,
        "tx_hash": tx.hash().hex(),
        "tx_index": 0,
        "status": "valid",
        "revocation": None,
    }
    assert list(record["metadata"]) == ["applicant", "z-last"], "metadata kept sorted"


def test_anchor_emits_a_searchable_event(chain: AppHarness) -> None:
    outcome = chain.run_block([anchor(name="x"), anchor(name="y")])
    assert [event.tx_index for event in outcome.events] == [0, 1]
    event = outcome.events[1]
    assert event.kind == "notary.anchor"
    assert ("notary.document", doc("y").hex()) in event.attributes
    assert ("notary.issuer", "Seoul City") in event.attributes
    assert ("notary.doc_type", "certificate") in event.attributes


def test_duplicate_anchor_refused_changing_nothing(chain: AppHarness) -> None:
    chain.run_block([anchor()])
    original = document(chain, "a")
    dup = anchor(key=DISTRICT, doc_type="other")
    assert chain.check(dup).code == Code.OK, "check_tx is admission only, not execution"
    outcome = chain.run_block([dup])
    assert codes(outcome.results) == [Code.NOTARY_DUPLICATE_ANCHOR]
    assert outcome.events == ()
    assert list(outcome.writes) == [REPLAY_PREFIX + dup.replay_key]
    assert document(chain, "a") == original


def test_duplicate_in_the_same_block_refused(chain: AppHarness) -> None:
    outcome = chain.run_block([anchor(), anchor(key=DISTRICT)])
    assert codes(outcome.results) == [Code.OK, Code.NOTARY_DUPLICATE_ANCHOR]
    assert document(chain, "a")["agency"] == "Seoul City"


def test_revoke_by_issuer_marks_document_revoked(chain: AppHarness) -> None:
    chain.run_block([anchor()])
    tx = revoke(reason="forged signature found")
    outcome = chain.run_block([tx], time_ms=99_000)
    assert codes(outcome.results) == [Code.OK]
    assert outcome.events[0].kind == "notary.revoke"
    record = document(chain, "a")
    assert record is not None
    assert record["status"] == "revoked"
    assert record["revocation"] == {
        "reason": "forged signature found",
        "height": 2,
        "time_ms": 99_000,
        "tx_hash": tx.hash().hex(),
    }
    assert record["height"] == 1, "anchoring facts are kept"


def test_revoke_twice_refused(chain: AppHarness) -> None:
    chain.run_block([anchor(), revoke()])
    first = document(chain, "a")
    outcome = chain.run_block([revoke(reason="again")])
    assert codes(outcome.results) == [Code.NOTARY_ALREADY_REVOKED]
    assert document(chain, "a") == first


def test_revoke_by_another_agency_refused(chain: AppHarness) -> None:
    chain.run_block([anchor()])
    outcome = chain.run_block([revoke(key=DISTRICT)])
    assert codes(outcome.results) == [Code.NOTARY_NOT_ISSUER]
    assert document(chain, "a")["status"] == "valid"


def test_revoke_unknown_document_refused(chain: AppHarness) -> None:
    outcome = chain.run_block([revoke(name="never")])
    assert codes(outcome.results) == [Code.NOTARY_UNKNOWN_DOCUMENT]
    assert not any(key.startswith(b"notary/") for key in outcome.writes)


def test_anchor_after_revoke_of_same_hash_is_still_a_duplicate(chain: AppHarness) -> None:
    chain.run_block([anchor(), revoke()])
    assert codes(chain.run_block([anchor()]).results) == [Code.NOTARY_DUPLICATE_ANCHOR]


def test_order_within_a_block_matters(chain: AppHarness) -> None:
    ok = chain.run_block([anchor(name="first"), revoke(name="first")])
    assert codes(ok.results) == [Code.OK, Code.OK]
    assert document(chain, "first")["status"] == "revoked"
    bad = chain.run_block([revoke(name="second"), anchor(name="second")])
    assert codes(bad.results) == [Code.NOTARY_UNKNOWN_DOCUMENT, Code.OK]
    assert document(chain, "second")["status"] == "valid"


def test_failed_tx_writes_are_discarded_but_later_txs_see_earlier_success(
    chain: AppHarness,
) -> None:
    """Three txs in a block: a good anchor, a failing revoke by the wrong agency, a
    good revoke. Only the successful txs' writes (plus every replay key) land."""
    good, wrong, right = anchor(), revoke(key=DISTRICT), revoke()
    outcome = chain.run_block([good, wrong, right])
    assert codes(outcome.results) == [Code.OK, Code.NOTARY_NOT_ISSUER, Code.OK]
    replay_keys = {REPLAY_PREFIX + tx.replay_key for tx in (good, wrong, right)}
    notary_keys = {key for key in outcome.writes if key.startswith(b"notary/")}
    assert set(outcome.writes) == replay_keys | notary_keys
    assert DOC_PREFIX + doc("a") in notary_keys
    assert len(notary_keys) == 2, "one document record and one issuer index row"


def test_query_document_not_found_and_bad_params(chain: AppHarness) -> None:
    assert not chain.query("notary/document", {"hash": doc("none").hex()}).found
    for params in ({}, {"hash": "zz"}, {"hash": "ab"}, {"hash": doc("a").hex(), "x": "1"}):
        with pytest.raises(QueryError):
            chain.query("notary/document", params)
    with pytest.raises(QueryError):
        chain.query("notary/nothing", {})
