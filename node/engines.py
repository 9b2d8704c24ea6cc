"""Builds the consensus engine the genesis names, restored from the store.

A node refuses to start with an engine that does not match its genesis: the engine kind
comes from genesis alone, never from local config.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.solo import SoloConfig, SoloEngine
from consensus.types import Engine, MessageCodec
from node.genesis import Genesis
from protocol.crypto import ZERO_HASH, SigningKey
from storage.interface import ChainStore


class EngineSetupError(RuntimeError):
    """The engine cannot start with this genesis, key and store (a clear, fatal error)."""


@dataclass(frozen=True, slots=True)
class BuiltEngine:
    engine: Engine
    codec: MessageCodec | None  # None for engines that never talk to peers


def build_engine(genesis: Genesis, *, key: SigningKey, store: ChainStore) -> BuiltEngine:
    kind = genesis.consensus.kind
    height = store.committed_height()
    block_hash = store.block_hash(height) if height else ZERO_HASH
    assert block_hash is not None
    if kind == "solo":
        config = SoloConfig(
            chain_id=genesis.chain_id,
            validators=genesis.validator_set(),
            pipeline_depth=genesis.consensus.pipeline_depth,
        )
        if key.public_key != config.validators.public_keys[0]:
            raise EngineSetupError("this node's key is not the chain's single validator")
        engine = SoloEngine(
            config,
            key=key,
            committed_height=height,
            committed_hash=block_hash,
            executed_height=height,
        )
        return BuiltEngine(engine=engine, codec=None)
    raise EngineSetupError(f"consensus kind {kind!r} is not available in this build")
