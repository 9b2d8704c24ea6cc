"""Query paths: per-agency listing with cursor pagination, and the agency list."""

from __future__ import annotations

import pytest

from protocol.crypto import SigningKey
from services import limits
from services.interface import QueryError
from services.notary import encode_anchor
from services.testing import AppHarness
from tests.services.services_helpers import AUDITOR, CITY, DISTRICT, doc, sign


def _anchor_many(
    chain: AppHarness, key_names: list[tuple[SigningKey, str]], per_block: int
) -> None:
    txs = [sign(key, "notary.anchor", encode_anchor(doc(name), "c")) for key, name in key_names]
    for start in range(0, len(txs), per_block):
        outcome = chain.run_block(txs[start : start + per_block])
        assert all(result.ok for result in outcome.results)


def _all_pages(chain: AppHarness, agency: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after = ""
    for _ in range(100):  # bounded: a broken cursor must not loop forever
        params = {"agency": agency, "limit": str(limit)}
        if after:
            params["after"] = after
        value = chain.query("notary/issuer", params).value
        pages.append([record["document_hash"] for record in value["documents"]])
        if value["next"] is None:
            return pages
        after = value["next"]
    raise AssertionError("pagination did not end")


def test_issuer_listing_pages_through_every_document_in_anchoring_order(
    chain: AppHarness,
) -> None:
    names = [f"doc-{i}" for i in range(11)]
    mixed = [(CITY if i % 3 else DISTRICT, name) for i, name in enumerate(names)]
    _anchor_many(chain, mixed, per_block=4)
    city_docs = [doc(name).hex() for key, name in mixed if key is CITY]
    pages = _all_pages(chain, "Seoul City", limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [item for page in pages for item in page] == city_docs


def test_issuer_listing_exact_multiple_of_limit_ends_without_an_empty_page(
    chain: AppHarness,
) -> None:
    _anchor_many(chain, [(CITY, f"d{i}") for i in range(4)], per_block=4)
    assert [len(page) for page in _all_pages(chain, "Seoul City", limit=2)] == [2, 2]


def test_issuer_listing_by_public_key_hex_and_default_limit(chain: AppHarness) -> None:
    count = limits.query_page_default + 1
    _anchor_many(chain, [(DISTRICT, f"d{i}") for i in range(count)], per_block=count)
    value = chain.query("notary/issuer", {"agency": DISTRICT.public_key.hex()}).value
    assert value["agency"]["name"] == "Gangnam-gu"
    assert len(value["documents"]) == limits.query_page_default
    assert value["next"] is not None


def test_issuer_listing_for_unknown_agency_is_not_found(chain: AppHarness) -> None:
    assert not chain.query("notary/issuer", {"agency": "Busan"}).found
    assert chain.query("notary/issuer", {"agency": "Audit Office"}).value["documents"] == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"agency": "Seoul City", "limit": "0"},
        {"agency": "Seoul City", "limit": str(limits.query_page_max + 1)},
        {"agency": "Seoul City", "limit": "-1"},
        {"agency": "Seoul City", "limit": "ten"},
        {"agency": "Seoul City", "after": "xyz"},
        {"agency": "Seoul City", "after": "00"},
        {"agency": "Seoul City", "page": "2"},
        {"agency": "x" * (limits.query_param_chars_max + 1)},
    ],
)
def test_issuer_listing_rejects_bad_params(chain: AppHarness, params: dict[str, str]) -> None:
    with pytest.raises(QueryError):
        chain.query("notary/issuer", params)


def test_agency_list_shows_every_agency_and_role(chain: AppHarness) -> None:
    value = chain.query("agency/list", {}).value
    assert value["agencies"] == [
        {"name": "Audit Office", "public_key": AUDITOR.public_key.hex(), "roles": ["auditor"]},
        {"name": "Gangnam-gu", "public_key": DISTRICT.public_key.hex(), "roles": ["notary"]},
        {"name": "Seoul City", "public_key": CITY.public_key.hex(), "roles": ["notary"]},
    ]
    with pytest.raises(QueryError):
        chain.query("agency/list", {"x": "1"})


def test_unknown_path_is_a_query_error(chain: AppHarness) -> None:
    with pytest.raises(QueryError, match="unknown query path"):
        chain.query("vote/tally", {})
