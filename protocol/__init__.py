"""Protocol objects shared by every part of the node: canonical encoding, hashes,
domain-separated Ed25519 signatures, transactions, blocks, seals and Merkle proofs.

This package is a leaf: it imports only the standard library and PyNaCl, so that
consensus/, storage/, services/ and node/ can all depend on it without depending on
each other (see docs/ARCHITECTURE.md). docs/PROTOCOL.md specifies every byte.
"""
