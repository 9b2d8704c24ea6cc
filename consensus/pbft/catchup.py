"""Catch-up (state transfer by blocks): fetching committed blocks with their seals.

A replica that learns the chain is ahead of it (a stable checkpoint above its committed
height, a NEW-VIEW whose min-s is above it, a quorum of COMMITs for a seq it cannot reach)
asks for the missing heights with a `FetchRequest`. What comes back is trusted only as far
as it proves itself: every block must be valid, link to the previous one by prev_hash, and
carry a seal that `SealedBlock.invalid_for` accepts against the genesis validator set. The
first block that fails ends the use of that answer (counted); the request goes to another
peer. A peer can therefore waste our time but never make us commit a forged block.

Bounds: one request in flight, at most `batch_max` heights each; retried after
`retry_ticks` with the next peer in a fixed rotation (deterministic: no randomness needed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from consensus.types import FetchRequest, NodeId
from protocol.sealed import SealedBlock
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    accepted: tuple[SealedBlock, ...]  # consecutive from committed_height + 1
    rejected: str | None  # why the rest of the answer was not used


def verify_fetched(
    blocks: tuple[SealedBlock, ...],
    *,
    chain_id: str,
    validators: ValidatorSet,
    committed_height: int,
    committed_hash: bytes,
) -> Verified:
    """The prefix of `blocks` that extends our chain and proves itself, seal by seal."""
    accepted: list[SealedBlock] = []
    height, previous_hash = committed_height, committed_hash
    for sealed in sorted(blocks, key=lambda item: item.height):
        if sealed.height <= height:
            continue  # already have it; the driver may send overlapping ranges
        reason = _sealed_invalid(sealed, chain_id=chain_id, validators=validators)
        if reason is None and sealed.height != height + 1:
            reason = f"height {sealed.height} does not follow {height}"
        if reason is None and sealed.block.header.prev_hash != previous_hash:
            reason = f"block {sealed.height} does not link to our block {height}"
        if reason is not None:
            return Verified(accepted=tuple(accepted), rejected=reason)
        accepted.append(sealed)
        height, previous_hash = sealed.height, sealed.block.hash()
    return Verified(accepted=tuple(accepted), rejected=None)


def _sealed_invalid(sealed: SealedBlock, *, chain_id: str, validators: ValidatorSet) -> str | None:
    if sealed.block.header.chain_id != chain_id:
        return "block is for another chain"
    if (reason := sealed.block.invalid()) is not None:
        return reason
    if sealed.block.header.validators_hash != validators.hash():
        return "block names another validator set"
    if sealed.seal.kind != 1:
        return "a PBFT chain takes only quorum seals"
    return sealed.invalid_for(validators)


class CatchUp:
    """At most one outstanding fetch; retries rotate through the other validators."""

    def __init__(
        self, *, node_id: int, replica_count: int, batch_max: int, retry_ticks: int
    ) -> None:
        self._node_id = node_id
        self._replica_count = replica_count
        self._batch_max = batch_max
        self._retry_ticks = retry_ticks
        self.target = 0  # the highest height we know is committed somewhere
        self._deadline: int | None = None
        self._next_peer = (node_id + 1) % replica_count
        self.requests = 0
        self.rejected_answers = 0

    @property
    def outstanding(self) -> bool:
        return self._deadline is not None

    def want(self, target: int, *, committed_height: int, now: int) -> FetchRequest | None:
        """Note that heights up to `target` are committed elsewhere; a request if none is out."""
        self.target = max(self.target, target)
        if self._deadline is not None:
            return None
        return self._request(committed_height, now=now)

    def on_tick(self, *, committed_height: int, now: int) -> FetchRequest | None:
        if self._deadline is None or now < self._deadline:
            return None
        self._deadline = None
        return self._request(committed_height, now=now)

    def on_answer(
        self, *, sender: int, rejected: bool, committed_height: int, now: int
    ) -> FetchRequest | None:
        """After an answer was used: ask again (never the same peer if it lied) or stop."""
        self._deadline = None
        if rejected:
            self.rejected_answers += 1
            if self._next_peer == sender:
                self._rotate()
        return self._request(committed_height, now=now)

    def _request(self, committed_height: int, *, now: int) -> FetchRequest | None:
        if committed_height >= self.target or self._replica_count == 1:
            return None
        peer = self._rotate()
        self._deadline = now + self._retry_ticks
        self.requests += 1
        to_height = min(self.target, committed_height + self._batch_max)
        log.debug("fetch heights %d..%d from peer %d", committed_height + 1, to_height, peer)
        return FetchRequest(
            from_height=committed_height + 1, to_height=to_height, peer=NodeId(peer)
        )

    def _rotate(self) -> int:
        peer = self._next_peer
        self._next_peer = (self._next_peer + 1) % self._replica_count
        if self._next_peer == self._node_id:
            self._next_peer = (self._next_peer + 1) % self._replica_count
        if peer == self._node_id:
            return self._rotate()
        return peer
