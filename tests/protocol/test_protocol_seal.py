"""Seal verification: a quorum seal proves a block only with a quorum of distinct, in-range
validators whose COMMIT votes are each valid for this chain, height and block hash; a
leader seal carries exactly one valid Raft leader signature."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocol.crypto import DOMAIN_TX
from protocol.encoding import DecodeError
from protocol.seal import (
    SEAL_LEADER,
    Seal,
    commit_vote_payload,
    decode_seal,
    sign_commit_vote,
)
from tests.protocol.protocol_samples import CHAIN_ID, leader_seal, quorum_seal, sample_chain

CHAIN = sample_chain(heights=2, txs_per_block=2, validator_count=4)
BLOCK = CHAIN.at(2).block
KEYS = CHAIN.keys
VALIDATORS = CHAIN.validators


def _reason(seal: Seal, *, chain_id: str = CHAIN_ID, height: int | None = None) -> str | None:
    return seal.invalid_for(
        VALIDATORS,
        chain_id=chain_id,
        height=BLOCK.height if height is None else height,
        block_hash=BLOCK.hash(),
    )


@pytest.mark.parametrize("signers", [[0, 1, 2], [1, 2, 3], [0, 2, 3], [0, 1, 2, 3]])
def test_quorum_of_valid_votes_seals_the_block(signers):
    assert VALIDATORS.quorum == 3
    assert _reason(quorum_seal(BLOCK, KEYS, signers)) is None


@pytest.mark.parametrize("signers", [[], [0], [1, 3]])
def test_fewer_than_quorum_is_refused(signers):
    assert "quorum" in (_reason(quorum_seal(BLOCK, KEYS, signers)) or "")


def test_duplicate_index_does_not_count_twice():
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2])
    duplicated = replace(seal, signatures=(seal.signatures[0], *seal.signatures[:2]))
    assert "increasing" in (_reason(duplicated) or "")
    with pytest.raises(DecodeError, match="increasing"):
        decode_seal(duplicated.encode())


def test_unsorted_indices_are_refused():
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2])
    shuffled = replace(seal, signatures=tuple(reversed(seal.signatures)))
    assert "increasing" in (_reason(shuffled) or "")


def test_out_of_range_index_is_refused():
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2])
    beyond = replace(seal, signatures=(*seal.signatures, (4, seal.signatures[0][1])))
    assert "out of range" in (_reason(beyond) or "")


def test_one_bad_signature_spoils_the_seal_even_beyond_quorum():
    """Every signature is checked, not just the first quorum of them."""
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2, 3])
    index, _ = seal.signatures[3]
    bad = replace(seal, signatures=(*seal.signatures[:3], (index, bytes(64))))
    assert _reason(bad) == "bad signature from validator 3"


def test_vote_by_the_wrong_validator_key_is_refused():
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2])
    # Validator 2's slot carries validator 3's (otherwise valid) vote.
    swapped = quorum_seal(BLOCK, KEYS, [3])
    forged = replace(seal, signatures=(*seal.signatures[:2], (2, swapped.signatures[0][1])))
    assert _reason(forged) == "bad signature from validator 2"


def test_tx_signature_reused_as_a_vote_fails():
    """Domain separation: the validator signs the exact vote payload, but as a tx."""
    payload = commit_vote_payload(
        chain_id=CHAIN_ID, view=0, height=BLOCK.height, block_hash=BLOCK.hash()
    )
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2])
    wrong_domain = KEYS[2].sign(DOMAIN_TX, payload)
    forged = replace(seal, signatures=(*seal.signatures[:2], (2, wrong_domain)))
    assert _reason(forged) == "bad signature from validator 2"


def test_leader_seal_signature_is_not_a_commit_vote():
    raft = leader_seal(BLOCK, KEYS, 1, term=0)
    as_quorum_vote = quorum_seal(BLOCK, KEYS, [0, 2])
    mixed = replace(
        as_quorum_vote,
        signatures=(as_quorum_vote.signatures[0], raft.signatures[0], as_quorum_vote.signatures[1]),
    )
    assert _reason(mixed) == "bad signature from validator 1"


def test_wrong_chain_id_is_refused():
    assert _reason(quorum_seal(BLOCK, KEYS, [0, 1, 2]), chain_id="other-chain") == (
        "bad signature from validator 0"
    )
    assert "chain id" in (_reason(quorum_seal(BLOCK, KEYS, [0, 1, 2]), chain_id="Bad Chain") or "")


def test_wrong_height_or_hash_is_refused():
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2])
    assert "height" in (_reason(seal, height=BLOCK.height + 1) or "")
    other_hash = CHAIN.at(1).block.hash()
    assert "block hash" in (
        seal.invalid_for(VALIDATORS, chain_id=CHAIN_ID, height=BLOCK.height, block_hash=other_hash)
        or ""
    )


def test_votes_for_another_view_are_refused():
    """The round is signed: changing it in the seal invalidates every vote."""
    seal = quorum_seal(BLOCK, KEYS, [0, 1, 2], view=5)
    assert _reason(seal) is None
    assert _reason(replace(seal, round=6)) == "bad signature from validator 0"


def test_votes_for_another_block_are_refused():
    other = CHAIN.at(1).block
    block_hash = BLOCK.hash()
    signatures = tuple(
        (
            i,
            sign_commit_vote(
                KEYS[i], chain_id=CHAIN_ID, view=0, height=BLOCK.height, block_hash=other.hash()
            ),
        )
        for i in range(3)
    )
    seal = Seal(kind=1, round=0, height=BLOCK.height, block_hash=block_hash, signatures=signatures)
    assert _reason(seal) == "bad signature from validator 0"


def test_leader_seal_valid_with_one_signature_only():
    raft = leader_seal(BLOCK, KEYS, 2)
    assert raft.kind == SEAL_LEADER
    assert _reason(raft) is None
    two = replace(raft, signatures=(leader_seal(BLOCK, KEYS, 0).signatures[0], raft.signatures[0]))
    assert "exactly one" in (_reason(two) or "")
    assert "exactly one" in (_reason(replace(raft, signatures=())) or "")


def test_commit_vote_signature_is_not_a_leader_seal():
    vote = quorum_seal(BLOCK, KEYS, [2])
    as_leader = replace(vote, kind=SEAL_LEADER)
    assert _reason(as_leader) == "bad signature from validator 2"


def test_unknown_kind_is_refused():
    assert "unknown seal kind" in (
        _reason(replace(quorum_seal(BLOCK, KEYS, [0, 1, 2]), kind=7)) or ""
    )
