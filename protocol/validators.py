"""The validator set: an ordered tuple of Ed25519 public keys fixed by genesis.

A validator's index in this tuple is its id on the wire (u16) and in seals.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits
from protocol.crypto import PUBLIC_KEY_BYTES, sha256
from protocol.encoding import Writer
from protocol.quorum import bft_quorum, crash_quorum, max_faulty

DOMAIN_VALIDATORS = b"seoulchain/validators/v1\n"


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    public_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        assert 1 <= len(self.public_keys) <= limits.validators_max
        assert all(len(key) == PUBLIC_KEY_BYTES for key in self.public_keys)
        assert len(set(self.public_keys)) == len(self.public_keys), "duplicate validator key"

    def __len__(self) -> int:
        return len(self.public_keys)

    @property
    def size(self) -> int:
        return len(self.public_keys)

    @property
    def max_faulty(self) -> int:
        return max_faulty(self.size)

    @property
    def quorum(self) -> int:
        return bft_quorum(self.size)

    @property
    def crash_quorum(self) -> int:
        return crash_quorum(self.size)

    def index_of(self, public_key: bytes) -> int | None:
        try:
            return self.public_keys.index(public_key)
        except ValueError:
            return None

    def hash(self) -> bytes:
        writer = Writer().raw(DOMAIN_VALIDATORS).u16(self.size)
        for key in self.public_keys:
            writer.fixed(key, PUBLIC_KEY_BYTES)
        return sha256(writer.finish())
