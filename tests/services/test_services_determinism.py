"""Determinism: the same genesis and blocks give the same results, writes and app hash on
any instance; any difference in results or writes changes the hash (docs/SERVICES.md)."""

from __future__ import annotations

import dataclasses

import pytest

from protocol.tx import Tx
from services.app import SeoulApplication
from services.genesis import Agency
from services.notary import encode_anchor, encode_revoke
from services.testing import AppHarness
from tests.services.services_helpers import (
    CHAIN_ID,
    CITY,
    DISTRICT,
    STRANGER,
    doc,
    make_genesis,
    sign,
)


def _blocks() -> list[list[Tx]]:
    return [
        [
            sign(CITY, "notary.anchor", encode_anchor(doc("a"), "c", {"k": "v"}), nonce=1),
            sign(DISTRICT, "notary.anchor", encode_anchor(doc("b"), "c"), nonce=1),
        ],
        [
            sign(STRANGER, "notary.anchor", encode_anchor(doc("c"), "c"), nonce=1),
            sign(CITY, "notary.revoke", encode_revoke(doc("a"), "why"), nonce=2),
        ],
        [],
    ]


def _run(blocks: list[list[Tx]]) -> tuple[list[bytes], dict[bytes, bytes]]:
    chain = AppHarness(SeoulApplication(make_genesis()), chain_id=CHAIN_ID)
    hashes = [chain.app_hash]
    for txs in blocks:
        hashes.append(chain.run_block(txs).app_hash)
    return hashes, chain.state.snapshot()


def test_same_blocks_give_the_same_app_hashes_and_state() -> None:
    first_hashes, first_state = _run(_blocks())
    second_hashes, second_state = _run(_blocks())
    assert first_hashes == second_hashes
    assert first_state == second_state
    assert len(set(first_hashes)) == len(first_hashes), "every block moves the hash chain"


def test_different_results_give_a_different_app_hash() -> None:
    """Swap the order of the revoke and the stranger's refused anchor: the block's writes
    are the same, only the order of its results differs, and that alone moves the hash."""
    baseline, _ = _run(_blocks())
    swapped = _blocks()
    swapped[1].reverse()
    reordered, _ = _run(swapped)
    assert reordered[1] == baseline[1]
    assert reordered[2] != baseline[2]
    assert reordered[3] != baseline[3], "the chain carries a difference forward"


def test_block_time_changes_the_hash_through_the_records() -> None:
    chain_a = AppHarness(SeoulApplication(make_genesis()), chain_id=CHAIN_ID)
    chain_b = AppHarness(SeoulApplication(make_genesis()), chain_id=CHAIN_ID)
    block = _blocks()[0]
    assert (
        chain_a.run_block(block, time_ms=1).app_hash != chain_b.run_block(block, time_ms=2).app_hash
    )


def test_genesis_hash_depends_on_agencies_and_chain_id() -> None:
    base = make_genesis()
    hashes = {
        SeoulApplication(base).genesis_app_hash(),
        SeoulApplication(dataclasses.replace(base, chain_id="seoul-other")).genesis_app_hash(),
        SeoulApplication(
            dataclasses.replace(
                base,
                agencies=(
                    *base.agencies[:2],
                    dataclasses.replace(base.agencies[2], roles=("auditor", "notary")),
                ),
            )
        ).genesis_app_hash(),
    }
    assert len(hashes) == 3
    assert SeoulApplication(make_genesis()).genesis_app_hash() in hashes


@pytest.mark.parametrize(
    "agencies",
    [
        (),
        (Agency(name="A", public_key=b"k" * 31, roles=()),),
        (Agency(name="", public_key=b"k" * 32, roles=()),),
        (Agency(name="A\n", public_key=b"k" * 32, roles=()),),
        (Agency(name="A", public_key=b"k" * 32, roles=("Notary",)),),
        (Agency(name="A", public_key=b"k" * 32, roles=("notary", "notary")),),
        (
            Agency(name="A", public_key=b"k" * 32, roles=()),
            Agency(name="A", public_key=b"j" * 32, roles=()),
        ),
        (
            Agency(name="A", public_key=b"k" * 32, roles=()),
            Agency(name="B", public_key=b"k" * 32, roles=()),
        ),
    ],
    ids=[
        "none",
        "short-key",
        "empty-name",
        "control-in-name",
        "bad-role",
        "dup-role",
        "dup-name",
        "dup-key",
    ],
)
def test_invalid_genesis_is_refused_at_startup(agencies: tuple[Agency, ...]) -> None:
    with pytest.raises(ValueError, match="invalid services genesis"):
        SeoulApplication(dataclasses.replace(make_genesis(), agencies=agencies))
