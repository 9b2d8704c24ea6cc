"""Builds the consensus engine the genesis names, restored from the store.

A node refuses to start with an engine that does not match its genesis: the engine kind
comes from genesis alone, never from local config.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from consensus.follower import FollowerConfig, FollowerEngine
from consensus.pbft.codec import PbftCodec
from consensus.pbft.config import PbftConfig
from consensus.pbft.engine import PbftEngine
from consensus.raft.codec import RaftCodec
from consensus.raft.config import RaftConfig
from consensus.raft.engine import RaftEngine, RaftStateLost
from consensus.solo import SoloConfig, SoloEngine
from consensus.types import BlockExecuted, Engine, MessageCodec
from node.genesis import Genesis
from protocol.block import Block
from protocol.crypto import ZERO_HASH, SigningKey
from storage.interface import ChainStore


class EngineSetupError(RuntimeError):
    """The engine cannot start with this genesis, key and store (a clear, fatal error)."""


@dataclass(frozen=True, slots=True)
class BuiltEngine:
    engine: Engine
    codec: MessageCodec | None  # None for engines that never talk to peers


def build_engine(
    genesis: Genesis,
    *,
    key: SigningKey,
    store: ChainStore,
    view_change_timeout_ticks: int,
    election_timeout_ticks: int,
    election_timeout_ticks_max: int,
    heartbeat_ticks: int,
    rng: random.Random,
) -> BuiltEngine:
    kind = genesis.consensus.kind
    height = store.committed_height()
    block_hash = store.block_hash(height) if height else ZERO_HASH
    assert block_hash is not None
    validators = genesis.validator_set()
    if validators.index_of(key.public_key) is None:
        # Not a validator: a read replica that follows the chain by checking seals.
        follower = FollowerEngine(
            FollowerConfig(chain_id=genesis.chain_id, validators=validators),
            committed_height=height,
            committed_hash=block_hash,
        )
        return BuiltEngine(engine=follower, codec=None)
    if kind == "pbft":
        pbft_config = PbftConfig(
            chain_id=genesis.chain_id,
            validators=validators,
            node_id=validators.index_of(key.public_key) or 0,
            pipeline_depth=genesis.consensus.pipeline_depth,
            checkpoint_interval_seqs=genesis.consensus.checkpoint_interval,
            watermark_window_seqs=genesis.consensus.watermark_window,
            view_change_timeout_ticks=view_change_timeout_ticks,
            view_change_timeout_ticks_max=view_change_timeout_ticks * 64,
        )
        pbft = PbftEngine(
            pbft_config,
            key=key,
            restored=store.consensus_load(),
            committed_height=height,
            committed_hash=block_hash,
            executed=_recent_executions(store, height, genesis.consensus.pipeline_depth),
            rng=rng,
        )
        return BuiltEngine(engine=pbft, codec=PbftCodec(pbft_config))
    if kind == "raft":
        settings = genesis.consensus.raft
        raft_config = RaftConfig(
            chain_id=genesis.chain_id,
            validators=validators,
            node_id=validators.index_of(key.public_key) or 0,
            pipeline_depth=genesis.consensus.pipeline_depth,
            election_timeout_ticks=election_timeout_ticks,
            election_timeout_ticks_max=election_timeout_ticks_max,
            heartbeat_ticks=heartbeat_ticks,
            pre_vote=settings.pre_vote,
            check_quorum=settings.check_quorum,
            max_entries_per_append=settings.max_entries_per_append,
        )
        try:
            raft = RaftEngine(
                raft_config,
                key=key,
                restored=store.consensus_load(),
                committed_height=height,
                committed_hash=block_hash,
                executed=_recent_executions(store, height, genesis.consensus.pipeline_depth),
                rng=rng,
            )
        except RaftStateLost as error:
            raise EngineSetupError(
                f"{error}; this node's Raft records were lost: wipe its data directory and "
                "let it resync from the others (restarting as is could vote twice in a term)"
            ) from None
        return BuiltEngine(engine=raft, codec=RaftCodec(raft_config))
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


def undecided_blocks(engine: Engine) -> tuple[Block, ...]:
    """The blocks above the committed height an engine restored from its durable state and
    may still commit (PBFT prepared certificates, Raft log entries); engines that keep none
    (solo, follower) have no `undecided_blocks`. The node holds their txs at start."""
    method: Callable[[], tuple[Block, ...]] | None = getattr(engine, "undecided_blocks", None)
    return () if method is None else method()


def _recent_executions(store: ChainStore, height: int, depth: int) -> list[BlockExecuted]:
    executed = []
    for past in range(max(1, height - depth), height + 1):
        block_hash = store.block_hash(past)
        app_hash = store.app_hash(past)
        results_root = store.results_root(past)
        assert block_hash is not None
        assert app_hash is not None
        assert results_root is not None
        executed.append(
            BlockExecuted(
                height=past, block_hash=block_hash, app_hash=app_hash, results_root=results_root
            )
        )
    return executed
