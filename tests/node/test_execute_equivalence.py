"""Execution through the node's cached state view, after check_tx warmed every cache,
gives the same results, writes and app hash as execution over a plain dict of state."""

from __future__ import annotations

import msgspec

from node.executor import StoreStateView
from protocol.tx import Tx
from services import notary
from services.app import SeoulApplication
from services.codes import Code
from services.interface import BlockInfo, BlockOutcome
from services.testing import AppHarness
from storage.interface import BlockCommit
from storage.memory import MemoryChainStore
from tests.services.services_helpers import (
    AUDITOR,
    CHAIN_ID,
    CITY,
    DISTRICT,
    doc,
    make_genesis,
    sign,
)


def _repeated_key_anchor() -> bytes:
    """An anchor body naming doc_type twice: msgspec would keep the last one."""
    canonical = notary.encode_anchor(doc("twice"), "permit")
    head = msgspec.msgpack.encode("doc_type") + msgspec.msgpack.encode("other")
    return bytes([canonical[0] + 1]) + canonical[1:] + head


def _blocks() -> list[list[Tx]]:
    first = sign(CITY, "notary.anchor", notary.encode_anchor(doc("a"), "permit", {"k": "v"}))
    return [
        [
            first,
            sign(DISTRICT, "notary.anchor", notary.encode_anchor(doc("b"), "deed")),
            sign(DISTRICT, "notary.anchor", notary.encode_anchor(doc("a"), "deed")),
            sign(CITY, "notary.anchor", _repeated_key_anchor()),
            sign(AUDITOR, "notary.anchor", notary.encode_anchor(doc("c"), "deed")),
            sign(CITY, "notary.anchor", b"\xc1"),
            first,
        ],
        [
            first,
            sign(CITY, "notary.revoke", notary.encode_revoke(doc("a"), "superseded")),
            sign(DISTRICT, "notary.revoke", notary.encode_revoke(doc("b"), "void")),
            sign(CITY, "notary.anchor", notary.encode_anchor(doc("d"), "permit")),
        ],
    ]


EXPECTED_CODES = [
    [
        Code.OK,
        Code.OK,
        Code.NOTARY_DUPLICATE_ANCHOR,
        Code.BODY_INVALID,
        Code.UNAUTHORIZED,
        Code.BODY_MALFORMED,
        Code.REPLAYED,
    ],
    [Code.REPLAYED, Code.OK, Code.OK, Code.OK],
]


def _through_the_node_view(blocks: list[list[Tx]]) -> list[BlockOutcome]:
    app = SeoulApplication(make_genesis())
    store = MemoryChainStore()
    app_hash = app.genesis_app_hash()
    store.set_genesis(genesis_hash=bytes(32), app_hash=app_hash, state_writes=app.genesis_writes())
    view = StoreStateView(store)
    outcomes = []
    for height, txs in enumerate(blocks, start=1):
        for tx in txs:
            app.check_tx(tx, view, next_height=height)  # warms the caches, as admission does
        info = BlockInfo(
            chain_id=CHAIN_ID, height=height, time_ms=height * 1000, proposer=bytes(32)
        )
        outcome = app.execute_block(info, txs, view, prev_app_hash=app_hash)
        store.commit_block(
            BlockCommit(
                height=height,
                block_hash=bytes([height]) * 32,
                block=b"block",
                seal=b"seal",
                tx_hashes=[],
                results=b"",
                results_root=outcome.results_root,
                app_hash=outcome.app_hash,
                state_writes=outcome.writes,
            )
        )
        view.forget(outcome.writes)
        app_hash = outcome.app_hash
        outcomes.append(outcome)
    return outcomes


def test_cached_execution_matches_plain_execution() -> None:
    blocks = _blocks()
    cached = _through_the_node_view(blocks)
    harness = AppHarness(SeoulApplication(make_genesis()), chain_id=CHAIN_ID)
    plain = [harness.run_block(txs) for txs in blocks]
    for expected_codes, mine, theirs in zip(EXPECTED_CODES, cached, plain, strict=True):
        assert [result.code for result in mine.results] == expected_codes
        assert mine.results == theirs.results
        assert dict(mine.writes) == dict(theirs.writes)
        assert mine.app_hash == theirs.app_hash
        assert mine.events == theirs.events
