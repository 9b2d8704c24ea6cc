"""Notary extensions (issue 7): batch anchoring (all or nothing), expiry, status at a time."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocol.results import TxResult
from protocol.tx import Tx
from services.codes import Code
from services.interface import QueryError
from services.notary import (
    BATCH_DOCUMENTS_MAX,
    DOC_PREFIX,
    AnchorBody,
    encode_anchor,
    encode_anchor_batch,
    encode_revoke,
)
from services.testing import AppHarness
from tests.services.services_helpers import AUDITOR, CITY, DISTRICT, doc, sign


def item(name: str, expires_at_ms: int | None = None) -> AnchorBody:
    return AnchorBody(document_hash=doc(name), doc_type="certificate", expires_at_ms=expires_at_ms)


def batch(*names: str) -> Tx:
    return sign(CITY, "notary.anchor_batch", encode_anchor_batch([item(name) for name in names]))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def document(chain: AppHarness, name: str, **extra: str) -> Any:
    answer = chain.query("notary/document", {"hash": doc(name).hex(), **extra})
    return answer.value if answer.found else None


def test_batch_anchors_every_document_with_its_own_listing_row(chain: AppHarness) -> None:
    outcome = chain.run_block([batch("a", "b", "c")])
    assert codes(outcome.results) == [Code.OK]
    assert outcome.results[0].data == doc("a") + doc("b") + doc("c")
    for name in ("a", "b", "c"):
        record = document(chain, name)
        assert record["status"] == "valid"
        assert record["agency"] == "Seoul City"
    page = chain.query("notary/issuer", {"agency": "Seoul City"}).value
    assert [entry["document_hash"] for entry in page["documents"]] == [
        doc(name).hex() for name in ("a", "b", "c")
    ]
    attributes = outcome.events[0].attributes
    assert ("notary.batch_size", "3") in attributes
    assert [value for key, value in attributes if key == "notary.document"] == [
        doc(name).hex() for name in ("a", "b", "c")
    ]


def test_batch_with_one_already_anchored_document_anchors_none(chain: AppHarness) -> None:
    chain.run_block([sign(CITY, "notary.anchor", encode_anchor(doc("b"), "certificate"))])
    outcome = chain.run_block([batch("a", "b", "c")])
    assert codes(outcome.results) == [Code.NOTARY_DUPLICATE_ANCHOR]
    assert document(chain, "a") is None
    assert document(chain, "c") is None
    assert not any(key.startswith(DOC_PREFIX) for key in outcome.writes)


def test_batch_naming_a_hash_twice_is_refused(chain: AppHarness) -> None:
    outcome = chain.run_block([batch("a", "b", "a")])
    assert codes(outcome.results) == [Code.NOTARY_BATCH_DUPLICATE]
    assert document(chain, "a") is None


def test_batch_size_is_bounded_by_the_body_type(chain: AppHarness) -> None:
    names = [f"d{i}" for i in range(BATCH_DOCUMENTS_MAX + 1)]
    assert codes(chain.run_block([batch(*names)]).results) == [Code.BODY_INVALID]
    assert codes(chain.run_block([batch(*names[:-1])]).results) == [Code.OK]
    assert codes(chain.run_block([batch()]).results) == [Code.BODY_INVALID]


def test_batch_needs_the_notary_role(chain: AppHarness) -> None:
    tx = sign(AUDITOR, "notary.anchor_batch", encode_anchor_batch([item("a")]))
    assert codes(chain.run_block([tx]).results) == [Code.UNAUTHORIZED]


def test_expiry_is_judged_at_the_query_instant(chain: AppHarness) -> None:
    body = encode_anchor(doc("a"), "permit", expires_at_ms=5_000)
    chain.run_block([sign(CITY, "notary.anchor", body)], time_ms=1_000)
    assert document(chain, "a", at_ms="4999")["status"] == "valid"
    assert document(chain, "a", at_ms="5000")["status"] == "expired"
    record = document(chain, "a")
    assert record["status"] == "valid", "no instant given: the expiry is reported, not judged"
    assert record["expires_at_ms"] == 5_000
    assert record["judged_at_ms"] is None


def test_revoked_wins_over_expired(chain: AppHarness) -> None:
    body = encode_anchor(doc("a"), "permit", expires_at_ms=5_000)
    chain.run_block([sign(CITY, "notary.anchor", body)], time_ms=1_000)
    chain.run_block([sign(CITY, "notary.revoke", encode_revoke(doc("a"), "fraud"))], time_ms=2_000)
    assert document(chain, "a", at_ms="9000")["status"] == "revoked"
    assert document(chain, "a", at_ms="10")["status"] == "revoked"


def test_expiry_not_after_the_block_time_is_refused(chain: AppHarness) -> None:
    past = sign(CITY, "notary.anchor", encode_anchor(doc("a"), "permit", expires_at_ms=1_000))
    in_batch = sign(CITY, "notary.anchor_batch", encode_anchor_batch([item("b", 999)]))
    outcome = chain.run_block([past, in_batch], time_ms=1_000)
    assert codes(outcome.results) == [Code.NOTARY_EXPIRY_PASSED, Code.NOTARY_EXPIRY_PASSED]
    assert document(chain, "a") is None
    assert document(chain, "b") is None


def test_anchor_without_expiry_keeps_its_old_body_bytes_and_record_form() -> None:
    plain = encode_anchor(doc("a"), "certificate", {"k": "v"})
    assert b"expires_at_ms" not in plain
    assert msgspec.msgpack.decode(plain).keys() == {"document_hash", "doc_type", "metadata"}


def test_expiry_bounds_are_enforced_by_the_body(chain: AppHarness) -> None:
    for bad in (0, -1, 2**63, "soon"):
        raw = {"document_hash": doc("x"), "doc_type": "p", "expires_at_ms": bad}
        assert codes(chain.run_block([sign(CITY, "notary.anchor", raw)]).results) == [
            Code.BODY_INVALID
        ]


def test_at_ms_param_is_validated(chain: AppHarness) -> None:
    chain.run_block([batch("a")])
    for bad in ("-1", "x", "1.5", str(2**63)):
        with pytest.raises(QueryError):
            chain.query("notary/document", {"hash": doc("a").hex(), "at_ms": bad})


def test_issuer_pages_walk_a_batch_without_skips_or_repeats(chain: AppHarness) -> None:
    names = [f"d{i}" for i in range(7)]
    chain.run_block([batch(*names[:4]), batch(*names[4:])])
    seen: list[str] = []
    after = ""
    for _ in range(10):
        query = {"agency": "Seoul City", "limit": "3", **({"after": after} if after else {})}
        value = chain.query("notary/issuer", query).value
        seen += [entry["document_hash"] for entry in value["documents"]]
        if value["next"] is None:
            break
        assert len(value["next"]) == 28, "cursor: u64 height | u32 tx | u16 batch position"
        after = value["next"]
    assert seen == [doc(name).hex() for name in names]


def test_revoke_of_one_batch_document_leaves_the_others(chain: AppHarness) -> None:
    chain.run_block([batch("a", "b")])
    wrong = sign(DISTRICT, "notary.revoke", encode_revoke(doc("a"), "not mine"))
    right = sign(CITY, "notary.revoke", encode_revoke(doc("a"), "error"))
    assert codes(chain.run_block([wrong, right]).results) == [Code.NOTARY_NOT_ISSUER, Code.OK]
    assert document(chain, "a")["status"] == "revoked"
    assert document(chain, "b")["status"] == "valid"
