"""A committed block together with the seal that proves it: what block sync moves and what
storage keeps. Layout: bytes32 block | bytes32 seal."""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits
from protocol.block import Block, decode_block
from protocol.encoding import Reader, Writer
from protocol.seal import SEAL_BYTES_MAX, Seal, decode_seal
from protocol.validators import ValidatorSet


@dataclass(frozen=True, slots=True)
class SealedBlock:
    block: Block
    seal: Seal

    @property
    def height(self) -> int:
        return self.block.height

    def encode(self) -> bytes:
        return Writer().bytes32(self.block.encode()).bytes32(self.seal.encode()).finish()

    def invalid_for(self, validators: ValidatorSet) -> str | None:
        """None iff the seal proves this block; checks every signature."""
        return self.seal.invalid_for(
            validators,
            chain_id=self.block.header.chain_id,
            height=self.block.height,
            block_hash=self.block.hash(),
        )


def decode_sealed_block(data: bytes) -> SealedBlock:
    reader = Reader(data)
    block = decode_block(reader.bytes32("block", max_bytes=limits.block_bytes_max))
    seal = decode_seal(reader.bytes32("seal", max_bytes=SEAL_BYTES_MAX))
    reader.finish("sealed block")
    return SealedBlock(block=block, seal=seal)
