"""Merkle trees against a deliberately dumb RFC 6962 §2.1 reference, inclusion proofs for
every index of every tree size 1..100, and the injectivity that keeps block hashing
unambiguous (RELIABILITY F8: distinct tx lists never share a txs_root)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import merkle
from protocol.merkle import MerkleProof, prove
from tests.protocol.protocol_samples import sample_block, sample_tx, validator_keys, validator_set


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(items: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the text, recursively."""
    n = len(items)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + items[0])
    k = 1
    while k * 2 < n:
        k *= 2  # largest power of two smaller than n
    return _h(b"\x01" + reference_root(items[:k]) + reference_root(items[k:]))


def reference_path(items: list[bytes], m: int) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), leaf level first."""
    n = len(items)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*reference_path(items[:k], m), reference_root(items[k:])]
    return [*reference_path(items[k:], m - k), reference_root(items[:k])]


def _items(count: int, salt: bytes = b"") -> list[bytes]:
    return [_h(salt + i.to_bytes(4, "big")) for i in range(count)]


def test_empty_tree_root_is_hash_of_nothing():
    assert merkle.root([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 101))
def test_root_and_every_proof_match_the_reference(size):
    items = _items(size)
    root = merkle.root(items)
    assert root == reference_root(items)
    for index in range(size):
        proof = prove(items, index)
        assert list(proof.path) == reference_path(items, index)
        assert proof.verify(items[index], root)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 65, 100])
def test_wrong_item_index_or_total_fails(size):
    """A wrong total fails whenever it changes the path's shape. When it does not (leaf 0
    of 3 and of 4 climb the same way), the path cannot tell: that is why verifiers take
    the total from a sealed header, never from the proof (see the next test)."""
    items = _items(size)
    root = merkle.root(items)
    for index in range(size):
        proof = prove(items, index)
        assert not proof.verify(_h(b"not an item"), root)
        for other in range(size):
            if other != index:
                assert not proof.verify(items[other], root)
                moved = MerkleProof(index=other, total=size, path=proof.path)
                assert not moved.verify(items[index], root)
        for total in {size - 1, size + 1, 2 * size}:
            if 0 <= index < total and _shape(index, total) != _shape(index, size):
                resized = MerkleProof(index=index, total=total, path=proof.path)
                assert not resized.verify(items[index], root)


def _shape(index: int, total: int) -> list[str]:
    """Which side each sibling sits on, leaf level first, per RFC 6962 PATH(m, D[n]):
    all that (index, total) decide about a path."""
    if total == 1:
        return []
    k = 1
    while k * 2 < total:
        k *= 2
    if index < k:
        return [*_shape(index, k), "right"]
    return [*_shape(index - k, total - k), "left"]


def test_path_alone_does_not_fix_the_total():
    """RFC 9162 paths do not commit to the tree size: leaf 2 of 3 verifies as leaf 1 of 2
    with the same path. TxProof binds the total to header.tx_count for this reason."""
    items = _items(3)
    proof = prove(items, 2)
    assert MerkleProof(index=1, total=2, path=proof.path).verify(items[2], merkle.root(items))


def test_truncated_or_extended_paths_fail():
    items = _items(11)
    root = merkle.root(items)
    for index in range(11):
        proof = prove(items, index)
        shorter = MerkleProof(index=index, total=11, path=proof.path[:-1])
        longer = MerkleProof(index=index, total=11, path=(*proof.path, root))
        assert not shorter.verify(items[index], root)
        assert not longer.verify(items[index], root)


def test_malformed_proofs_yield_no_root():
    assert MerkleProof(index=3, total=3, path=()).root_for(b"x") is None
    assert MerkleProof(index=0, total=2, path=(b"short",)).root_for(b"x") is None
    assert MerkleProof(index=0, total=1, path=(b"\x00" * 32,) * 65).root_for(b"x") is None


def test_leaf_cannot_pose_as_an_inner_node():
    """Second preimage: the two children of a node, concatenated, are not a leaf."""
    items = _items(2)
    inner = merkle.leaf_hash(items[0]) + merkle.leaf_hash(items[1])
    assert merkle.root(items) != merkle.root([inner])


@settings(max_examples=200, deadline=None)
@given(
    first=st.lists(st.binary(min_size=32, max_size=32), max_size=9),
    second=st.lists(st.binary(min_size=32, max_size=32), max_size=9),
)
def test_distinct_item_lists_give_distinct_roots(first, second):
    if first != second:
        assert merkle.root(first) != merkle.root(second)
    else:
        assert merkle.root(first) == merkle.root(second)


def test_duplicated_last_item_changes_the_root():
    """Bitcoin's CVE-2012-2459: [a, b, c] and [a, b, c, c] share a root there, not here."""
    items = _items(3)
    assert merkle.root(items) != merkle.root([*items, items[-1]])
    assert merkle.root(items[:1]) != merkle.root(items[:1] * 2)


def test_distinct_tx_lists_give_distinct_txs_roots_and_block_hashes():
    """F8: moving bytes between adjacent txs (same concatenation) must change the root,
    because each tx is hashed whole and each tx's bytes are length-prefixed."""
    validators = validator_set(validator_keys(1))
    split_a = (sample_tx(1, body=b"ab"), sample_tx(2, body=b"c"))
    split_b = (sample_tx(1, body=b"a"), sample_tx(2, body=b"bc"))
    reordered = (split_a[1], split_a[0])
    blocks = [sample_block(1, txs, validators=validators) for txs in (split_a, split_b, reordered)]
    assert len({block.header.txs_root for block in blocks}) == 3
    assert len({block.hash() for block in blocks}) == 3
    assert len({block.encode() for block in blocks}) == 3
