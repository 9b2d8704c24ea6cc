"""Generic rules the router applies to every tx before any service: chain id, expiry,
replay, kind, role, body (docs/SERVICES.md §Generic rules), in check_tx and in blocks."""

from __future__ import annotations

import msgspec
import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from services.codes import Code
from services.router import REPLAY_PREFIX
from services.testing import AppHarness
from tests.services.services_helpers import AUDITOR, CITY, DISTRICT, STRANGER, doc, sign


def _anchor(name: str) -> dict[str, object]:
    return {"document_hash": doc(name), "doc_type": "certificate"}


def _codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def test_wrong_chain_is_refused_and_writes_nothing(chain: AppHarness) -> None:
    tx = sign(CITY, "notary.anchor", _anchor("a"), chain_id="other-chain")
    assert chain.check(tx).code == Code.WRONG_CHAIN
    outcome = chain.run_block([tx])
    assert _codes(outcome.results) == [Code.WRONG_CHAIN]
    assert outcome.writes == {}


def test_expired_tx_is_refused_and_does_not_consume_its_nonce(chain: AppHarness) -> None:
    chain.run_block([])
    chain.run_block([])  # height is now 2
    stale = sign(CITY, "notary.anchor", _anchor("a"), expiry_height=2, nonce=7)
    assert chain.check(stale).code == Code.EXPIRED, "check_tx compares with the next height"
    outcome = chain.run_block([stale])
    assert _codes(outcome.results) == [Code.EXPIRED]
    assert outcome.writes == {}


def test_expiry_equal_to_height_is_still_valid(chain: AppHarness) -> None:
    tx = sign(CITY, "notary.anchor", _anchor("a"), expiry_height=1)
    assert chain.check(tx).code == Code.OK
    assert _codes(chain.run_block([tx]).results) == [Code.OK]


def test_replay_refused_across_blocks(chain: AppHarness) -> None:
    first = sign(CITY, "notary.anchor", _anchor("a"), nonce=42)
    assert _codes(chain.run_block([first]).results) == [Code.OK]
    # Same (signer, nonce), different body: still a replay.
    again = sign(CITY, "notary.anchor", _anchor("b"), nonce=42)
    assert chain.check(again).code == Code.REPLAYED
    outcome = chain.run_block([again])
    assert _codes(outcome.results) == [Code.REPLAYED]
    assert outcome.writes == {}, "a tx refused for replay writes nothing"
    assert not chain.query("notary/document", {"hash": doc("b").hex()}).found


def test_replay_refused_within_one_block(chain: AppHarness) -> None:
    first = sign(CITY, "notary.anchor", _anchor("a"), nonce=5)
    second = sign(CITY, "notary.anchor", _anchor("b"), nonce=5)
    assert _codes(chain.run_block([first, second]).results) == [Code.OK, Code.REPLAYED]


def test_same_nonce_from_another_signer_is_not_a_replay(chain: AppHarness) -> None:
    txs = [
        sign(CITY, "notary.anchor", _anchor("a"), nonce=9),
        sign(DISTRICT, "notary.anchor", _anchor("b"), nonce=9),
    ]
    assert _codes(chain.run_block(txs).results) == [Code.OK, Code.OK]


def test_refused_tx_consumes_its_nonce_so_it_can_never_succeed_later(
    chain: AppHarness,
) -> None:
    """A tx refused by a service (here: revoke of an unknown document) still uses up its
    (signer, nonce): re-including the same tx after the document exists is a replay."""
    early_revoke = sign(CITY, "notary.revoke", {"document_hash": doc("a"), "reason": "x"})
    outcome = chain.run_block([early_revoke])
    assert _codes(outcome.results) == [Code.NOTARY_UNKNOWN_DOCUMENT]
    assert list(outcome.writes) == [REPLAY_PREFIX + early_revoke.replay_key]
    chain.run_block([sign(CITY, "notary.anchor", _anchor("a"))])
    assert _codes(chain.run_block([early_revoke]).results) == [Code.REPLAYED]


def test_unknown_kind(chain: AppHarness) -> None:
    tx = sign(CITY, "land.register", _anchor("a"))
    assert chain.check(tx).code == Code.UNKNOWN_KIND
    outcome = chain.run_block([tx])
    assert _codes(outcome.results) == [Code.UNKNOWN_KIND]
    assert list(outcome.writes) == [REPLAY_PREFIX + tx.replay_key]


@pytest.mark.parametrize("key", [STRANGER, AUDITOR], ids=["no-agency", "agency-without-role"])
def test_signer_without_the_role_is_unauthorized(chain: AppHarness, key: SigningKey) -> None:
    tx = sign(key, "notary.anchor", _anchor("a"))
    assert chain.check(tx).code == Code.UNAUTHORIZED
    outcome = chain.run_block([tx])
    assert _codes(outcome.results) == [Code.UNAUTHORIZED]
    assert list(outcome.writes) == [REPLAY_PREFIX + tx.replay_key]
    assert not chain.query("notary/document", {"hash": doc("a").hex()}).found


HASH = doc("x")
BAD_BODIES = [
    ("not-msgpack", b"\xc1", Code.BODY_MALFORMED),
    ("empty", b"", Code.BODY_MALFORMED),
    ("trailing-bytes", msgspec.msgpack.encode(_anchor("a")) + b"\x00", Code.BODY_MALFORMED),
    ("key-not-utf8", b"\x81\xa6\x00\x00\x00\x00\x00\x80", Code.BODY_MALFORMED),
    (
        "value-not-utf8",
        b"\x82\xaddocument_hash\xc4\x20" + HASH + b"\xa8doc_type\xa1\xff",
        Code.BODY_MALFORMED,
    ),
    (
        "repeated-field",
        b"\x83\xa8doc_type\xa1a\xaddocument_hash\xc4\x20" + HASH + b"\xa8doc_type\xa1b",
        Code.BODY_INVALID,
    ),
    (
        "repeated-metadata-key",
        b"\x83\xaddocument_hash\xc4\x20"
        + HASH
        + b"\xa8doc_type\xa1c\xa8metadata\x82\xa1k\xa1v\xa1k\xa1w",
        Code.BODY_INVALID,
    ),
    ("array-not-map", msgspec.msgpack.encode([HASH, "certificate"]), Code.BODY_INVALID),
    ("missing-field", {"document_hash": HASH}, Code.BODY_INVALID),
    ("unknown-field", {**_anchor("a"), "extra": 1}, Code.BODY_INVALID),
    ("hash-as-str", {"document_hash": HASH.hex(), "doc_type": "c"}, Code.BODY_INVALID),
    ("hash-31-bytes", {"document_hash": HASH[:31], "doc_type": "c"}, Code.BODY_INVALID),
    ("doc-type-int", {"document_hash": HASH, "doc_type": 5}, Code.BODY_INVALID),
    ("doc-type-empty", {"document_hash": HASH, "doc_type": ""}, Code.BODY_INVALID),
    ("doc-type-65", {"document_hash": HASH, "doc_type": "d" * 65}, Code.BODY_INVALID),
    ("doc-type-newline", {"document_hash": HASH, "doc_type": "cert\n"}, Code.BODY_INVALID),
    (
        "metadata-17-entries",
        {**_anchor("a"), "metadata": {f"k{i}": "v" for i in range(17)}},
        Code.BODY_INVALID,
    ),
    ("metadata-key-65", {**_anchor("a"), "metadata": {"k" * 65: "v"}}, Code.BODY_INVALID),
    ("metadata-value-257", {**_anchor("a"), "metadata": {"k": "v" * 257}}, Code.BODY_INVALID),
    ("metadata-value-int", {**_anchor("a"), "metadata": {"k": 1}}, Code.BODY_INVALID),
    ("metadata-not-map", {**_anchor("a"), "metadata": ["k", "v"]}, Code.BODY_INVALID),
]


@pytest.mark.parametrize(
    ("body", "code"),
    [(body, code) for _, body, code in BAD_BODIES],
    ids=[n for n, *_ in BAD_BODIES],
)
def test_bad_anchor_bodies_get_a_code_never_an_exception(
    chain: AppHarness, body: object, code: Code
) -> None:
    tx = sign(CITY, "notary.anchor", body)
    checked = chain.check(tx)
    assert checked.code == code
    assert checked.log.startswith("body"), checked.log
    outcome = chain.run_block([tx])
    assert _codes(outcome.results) == [code]
    assert list(outcome.writes) == [REPLAY_PREFIX + tx.replay_key]


@pytest.mark.parametrize(
    "body",
    [
        {"document_hash": HASH},
        {"document_hash": HASH, "reason": ""},
        {"document_hash": HASH, "reason": "r" * 257},
        {"document_hash": HASH, "reason": "ok", "doc_type": "c"},
    ],
    ids=["missing-reason", "empty-reason", "reason-257", "unknown-field"],
)
def test_bad_revoke_bodies_are_invalid(chain: AppHarness, body: object) -> None:
    tx = sign(CITY, "notary.revoke", body)
    assert chain.check(tx).code == Code.BODY_INVALID
    assert _codes(chain.run_block([tx]).results) == [Code.BODY_INVALID]


def test_check_tx_gives_detail_but_block_logs_are_fixed_text(chain: AppHarness) -> None:
    """Block result logs are hashed into the results root, so they must not carry a
    library's wording; check_tx answers are not hashed and may."""
    tx = sign(CITY, "notary.anchor", {"document_hash": HASH, "doc_type": 5})
    assert "doc_type" in chain.check(tx).log
    assert chain.run_block([tx]).results[0].log == "body fields are invalid"


def test_check_tx_admits_a_good_tx_without_writing(chain: AppHarness) -> None:
    tx = sign(CITY, "notary.anchor", _anchor("a"))
    before = chain.state.snapshot()
    assert chain.check(tx).code == Code.OK
    assert chain.check(tx).code == Code.OK, "check_tx consumes nothing: admits twice"
    assert chain.state.snapshot() == before
