"""A deliberately small engine for testing the simulator itself, not a consensus protocol.

Validator 0 leads forever: it proposes one block at a time, every validator signs a real
COMMIT vote (protocol/seal.py) for it, and with a BFT quorum of votes the leader builds a
quorum seal and sends the sealed block to everyone. It tolerates lost messages (the leader
re-sends every `RESEND_TICKS`) and crashes of anyone (votes are persisted per round, and a
restarted leader starts a new round), but not a faulty leader: liveness stops while the
leader is down, and a byzantine leader can fork it, which is what the positive-control tests
need. It also comes with a real `MessageCodec`, so the codec round trip is exercised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from consensus.sim.node import ChainParams, EngineFactory
from consensus.types import (
    NOTHING,
    BlockExecuted,
    Engine,
    EngineStatus,
    Envelope,
    Event,
    Fetched,
    FetchRequest,
    NodeId,
    Output,
    ProposalSlot,
    Propose,
    Received,
    Tick,
)
from protocol.block import Block, decode_block
from protocol.crypto import HASH_BYTES, SIGNATURE_BYTES, ZERO_HASH, SigningKey
from protocol.encoding import DecodeError, Reader, Writer
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote
from protocol.sealed import SealedBlock, decode_sealed_block
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)

LEADER = NodeId(0)
RESEND_TICKS = 5
_ROUND_KEY = b"toy/round"


@dataclass(frozen=True, slots=True)
class ToyProposal:
    round: int
    block: Block


@dataclass(frozen=True, slots=True, kw_only=True)
class ToyVote:
    round: int
    height: int
    block_hash: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class ToyCommit:
    sealed: SealedBlock


ToyMessage = ToyProposal | ToyVote | ToyCommit


class ToyEngine:
    def __init__(
        self,
        node_id: NodeId,
        *,
        key: SigningKey,
        validators: ValidatorSet,
        chain_id: str,
        pipeline_depth: int,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed_height: int,
    ) -> None:
        self._id = node_id
        self._key = key
        self._validators = validators
        self._chain_id = chain_id
        self._depth = pipeline_depth
        restored_round = int.from_bytes(restored.get(_ROUND_KEY, b"\0"), "big")
        self._round = restored_round + 1 if node_id == LEADER else 0
        self._voted = {k: v for k, v in restored.items() if k.startswith(b"toy/vote/")}
        self._height = len(committed)
        self._hash = committed[-1].block.hash() if committed else ZERO_HASH
        self._executed = executed_height
        self._proposal: Block | None = None
        self._votes: dict[int, bytes] = {}
        self._ahead: dict[int, SealedBlock] = {}  # commits received out of order
        self._last: SealedBlock | None = committed[-1] if committed else None
        self._ticks = 0
        self._start_output = (
            Output(persist=((_ROUND_KEY, self._round.to_bytes(8, "big")),))
            if node_id == LEADER
            else NOTHING
        )

    # --- contract --------------------------------------------------------------------------

    def step(self, event: Event) -> Output:
        output, self._start_output = self._start_output, NOTHING
        match event:
            case Tick():
                output = output.merge(self._on_tick())
            case Propose(block=block):
                output = output.merge(self._on_propose(block))
            case Received(sender=sender, message=message):
                output = output.merge(self._on_message(sender, message))
            case BlockExecuted(height=height):
                assert height == self._executed + 1
                self._executed = height
            case Fetched(blocks=blocks):
                output = output.merge(self._on_commits(blocks))
        return output

    def status(self) -> EngineStatus:
        slot = None
        ready = self._executed >= self._height + 1 - self._depth
        if self._id == LEADER and self._proposal is None and ready:
            slot = ProposalSlot(height=self._height + 1, prev_hash=self._hash)
        return EngineStatus(
            kind="toy",
            node_id=self._id,
            committed_height=self._height,
            round=self._round,
            leader=LEADER,
            role="leader" if self._id == LEADER else "follower",
            proposal_slot=slot,
            in_flight=int(self._proposal is not None),
        )

    # --- handlers --------------------------------------------------------------------------

    def _on_tick(self) -> Output:
        """The leader re-sends its open proposal, or else its last commit: either may have
        been lost, and a replica that missed the last commit learns of it no other way."""
        self._ticks += 1
        if self._id != LEADER or self._ticks % RESEND_TICKS:
            return NOTHING
        if self._proposal is not None:
            return Output(send=(Envelope(None, ToyProposal(self._round, self._proposal)),))
        if self._last is not None:
            return Output(send=(Envelope(None, ToyCommit(self._last)),))
        return NOTHING

    def _on_propose(self, block: Block) -> Output:
        assert self._id == LEADER
        assert self._proposal is None
        assert block.height == self._height + 1
        assert block.header.prev_hash == self._hash
        self._proposal = block
        self._votes = {}
        output = Output(send=(Envelope(None, ToyProposal(self._round, block)),))
        return output.merge(self._vote(self._round, block))

    def _on_message(self, sender: NodeId, message: object) -> Output:
        match message:
            case ToyProposal(round=round_, block=block) if sender == LEADER:
                return self._vote(round_, block)
            case ToyVote() if self._id == LEADER:
                return self._on_vote(sender, message)
            case ToyCommit(sealed=sealed):
                return self._on_commits((sealed,))
        return NOTHING

    def _vote(self, round_: int, block: Block) -> Output:
        if block.height > self._height + 1:
            return Output(
                fetch=(FetchRequest(from_height=self._height + 1, to_height=block.height - 1),)
            )
        if block.height != self._height + 1 or block.header.prev_hash != self._hash:
            return NOTHING
        key = b"toy/vote/%d/%d" % (round_, block.height)
        block_hash = block.hash()
        if self._voted.get(key, block_hash) != block_hash:
            return NOTHING  # never vote twice in one round at one height
        self._voted[key] = block_hash
        signature = sign_commit_vote(
            self._key, chain_id=self._chain_id, view=round_, height=block.height,
            block_hash=block_hash,
        )  # fmt: skip
        vote = ToyVote(
            round=round_, height=block.height, block_hash=block_hash, signature=signature
        )
        if self._id == LEADER:
            return Output(persist=((key, block_hash),)).merge(self._on_vote(self._id, vote))
        return Output(persist=((key, block_hash),), send=(Envelope(LEADER, vote),))

    def _on_vote(self, sender: NodeId, vote: ToyVote) -> Output:
        block = self._proposal
        if block is None or vote.round != self._round or vote.block_hash != block.hash():
            return NOTHING
        self._votes[sender] = vote.signature
        if len(self._votes) < self._validators.quorum:
            return NOTHING
        seal = Seal(
            kind=SEAL_QUORUM,
            round=self._round,
            height=block.height,
            block_hash=vote.block_hash,
            signatures=tuple(sorted(self._votes.items())),
        )
        sealed = SealedBlock(block=block, seal=seal)
        self._proposal = None
        output = Output(send=(Envelope(None, ToyCommit(sealed)),))
        return output.merge(self._on_commits((sealed,)))

    def _on_commits(self, blocks: tuple[SealedBlock, ...]) -> Output:
        for sealed in blocks:
            if sealed.height > self._height and sealed.invalid_for(self._validators) is None:
                self._ahead[sealed.height] = sealed
        committed: list[SealedBlock] = []
        while self._height + 1 in self._ahead:
            sealed = self._ahead.pop(self._height + 1)
            if sealed.block.header.prev_hash != self._hash:
                break
            committed.append(sealed)
            self._height, self._hash = sealed.height, sealed.block.hash()
            self._last = sealed
        self._ahead = {h: s for h, s in self._ahead.items() if h > self._height}
        fetch: tuple[FetchRequest, ...] = ()
        if self._ahead:
            gap_end = min(self._ahead) - 1
            fetch = (FetchRequest(from_height=self._height + 1, to_height=gap_end),)
        return Output(commit=tuple(committed), fetch=fetch)


class ToyCodec:
    """u8 tag | body. Tag 1: round + block, 2: vote, 3: sealed block."""

    def __init__(self, params: ChainParams) -> None:
        self._validators = params.validators
        self._chain_id = params.chain_id

    def encode(self, message: object) -> bytes:
        match message:
            case ToyProposal(round=round_, block=block):
                return Writer().u8(1).u64(round_).raw(block.encode()).finish()
            case ToyVote():
                return (
                    Writer().u8(2).u64(message.round).u64(message.height)
                    .fixed(message.block_hash, HASH_BYTES)
                    .fixed(message.signature, SIGNATURE_BYTES).finish()
                )  # fmt: skip
            case ToyCommit(sealed=sealed):
                return Writer().u8(3).raw(sealed.encode()).finish()
        raise TypeError(f"not a toy message: {type(message).__name__}")

    def decode(self, data: bytes) -> object:
        reader = Reader(data)
        tag = reader.u8("tag")
        if tag == 1:
            round_ = reader.u64("round")
            return ToyProposal(round_, decode_block(bytes(data[9:])))
        if tag == 2:
            vote = ToyVote(
                round=reader.u64("round"),
                height=reader.u64("height"),
                block_hash=reader.fixed(HASH_BYTES, "block_hash"),
                signature=reader.fixed(SIGNATURE_BYTES, "signature"),
            )
            reader.finish("toy vote")
            return vote
        if tag == 3:
            return ToyCommit(decode_sealed_block(bytes(data[1:])))
        raise DecodeError(f"unknown toy tag {tag}")

    def carried_blocks(self, message: object) -> tuple[Block, ...]:
        """A proposal carries its block (the simulator does not check tx signatures)."""
        return (message.block,) if isinstance(message, ToyProposal) else ()

    def invalid(self, message: object, sender: NodeId) -> str | None:
        match message:
            case ToyProposal(block=block):
                return block.invalid()
            case ToyVote():
                seal = Seal(
                    kind=SEAL_QUORUM, round=message.round, height=message.height,
                    block_hash=message.block_hash, signatures=((0, message.signature),),
                )  # fmt: skip
                single = ValidatorSet((self._validators.public_keys[sender],))
                return seal.invalid_for(
                    single, chain_id=self._chain_id, height=message.height,
                    block_hash=message.block_hash,
                )  # fmt: skip
            case ToyCommit(sealed=sealed):
                return sealed.invalid_for(self._validators)
        return f"not a toy message: {type(message).__name__}"


def toy_factory(params: ChainParams) -> EngineFactory:
    """An `EngineFactory` building ToyEngines for one simulated chain."""

    def build(
        node_id: NodeId,
        *,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed: tuple[BlockExecuted, ...],
    ) -> Engine:
        return ToyEngine(
            node_id,
            key=params.keys[node_id],
            validators=params.validators,
            chain_id=params.chain_id,
            pipeline_depth=params.pipeline_depth,
            restored=restored,
            committed=committed,
            executed_height=len(executed),
        )

    return build
