"""Merkle tree over a list of 32-byte items, as in RFC 6962 §2.1 (Certificate Transparency).

leaf = SHA-256(0x00 || item), node = SHA-256(0x01 || left || right), the tree split at the
largest power of two below n, empty tree = SHA-256(""). The leaf/node prefixes make a leaf
impossible to pass off as an inner node (second-preimage resistance), and the split rule
makes the tree shape a function of n alone. Proofs are RFC 6962 audit paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from protocol import limits
from protocol.crypto import HASH_BYTES, sha256
from protocol.encoding import DecodeError, Reader, Writer

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(item: bytes) -> bytes:
    return sha256(_LEAF + item)


def _node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE + left + right)


def root(items: list[bytes]) -> bytes:
    """The tree's root: n leaf hashes and n - 1 node hashes. Hot (every block's txs and
    results, on every node), so hashlib is called inline rather than through leaf_hash and
    _node_hash; the bytes hashed are the same."""
    if not items:
        return sha256(b"")
    new = hashlib.sha256
    level = [new(_LEAF + item).digest() for item in items]
    return _root_of_leaves(level)


def _root_of_leaves(leaves: list[bytes]) -> bytes:
    # Iterative bottom-up pairing gives the same tree as RFC 6962's recursive split:
    # a trailing odd node is promoted unchanged to the next level.
    new = hashlib.sha256
    level = leaves
    while len(level) > 1:
        lefts = level[0 : len(level) - 1 : 2]
        rights = level[1::2]
        paired = [new(_NODE + left + right).digest() for left, right in zip(lefts, rights)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class MerkleProof:
    index: int
    total: int
    path: tuple[bytes, ...]  # sibling hashes, leaf level first

    def encode(self) -> bytes:
        writer = Writer().u32(self.index).u32(self.total).u8(len(self.path))
        for sibling in self.path:
            writer.fixed(sibling, HASH_BYTES)
        return writer.finish()

    def root_for(self, item: bytes) -> bytes | None:
        """The root this proof yields for `item`, or None if the proof is malformed."""
        if not 0 <= self.index < self.total or len(self.path) > limits.merkle_proof_depth_max:
            return None
        if any(len(sibling) != HASH_BYTES for sibling in self.path):
            return None
        return _root_from_path(leaf_hash(item), self.index, self.total, list(self.path))

    def verify(self, item: bytes, expected_root: bytes) -> bool:
        return self.root_for(item) == expected_root


def _root_from_path(node: bytes, index: int, total: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2, step by step: the root an inclusion path yields, or None when the
    path has the wrong length for (index, total).

    `position` walks up from the leaf and `last` is the index of the last node at the
    current level. A node that is a right child, or the last node of its level (then it
    has no right sibling and was promoted unchanged until it is a right child), takes its
    sibling on the left; otherwise the sibling is on the right. The path is exactly as
    long as the number of levels at which the node has a sibling, so `last` must reach 0
    exactly when the path is used up.
    """
    position = index
    last = total - 1
    for sibling in path:
        if last == 0:
            return None  # path longer than the tree is tall
        if position % 2 == 1 or position == last:
            node = _node_hash(sibling, node)
            # Skip the levels where this node is promoted without a sibling.
            while position % 2 == 0 and position != 0:
                position //= 2
                last //= 2
        else:
            node = _node_hash(node, sibling)
        position //= 2
        last //= 2
    if last != 0:
        return None  # path shorter than the tree is tall
    return node


def prove(items: list[bytes], index: int) -> MerkleProof:
    assert 0 <= index < len(items)
    path: list[bytes] = []
    level = [leaf_hash(item) for item in items]
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        paired = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
        position //= 2
    return MerkleProof(index=index, total=len(items), path=tuple(path))


def decode_proof(data: bytes) -> MerkleProof:
    """Strict decode. It checks the shape (index < total, depth bound) but not that the
    depth fits (index, total): a wrong-length path simply fails to verify."""
    reader = Reader(data)
    index = reader.u32("index")
    total = reader.u32("total")
    depth = reader.u8("depth")
    if depth > limits.merkle_proof_depth_max:
        raise DecodeError(f"proof depth {depth} exceeds {limits.merkle_proof_depth_max}")
    path = tuple(reader.fixed(HASH_BYTES, f"path[{i}]") for i in range(depth))
    reader.finish("merkle proof")
    if not 0 <= index < total:
        raise DecodeError(f"proof index {index} outside 0..{total}")
    return MerkleProof(index=index, total=total, path=path)
