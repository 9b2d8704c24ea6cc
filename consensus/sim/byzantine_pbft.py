"""PBFT-specific byzantine behaviour (RELIABILITY B2, B3, B10), built on the generic
wrappers in byzantine.py and the signing constructors of consensus/pbft/messages.py.

    equivocating_primary   B2: each PRE-PREPARE it broadcasts goes as-is to one part of the
                           replicas and, for a conflicting block at the same (view, seq), to
                           the rest. With at most f byzantine nodes no two digests commit.
    double_voting          B3: every PREPARE and COMMIT is followed by a second one, for a
                           different digest at the same (view, seq). Counted at most once.
    Coalition              an equivocating primary plus accomplices that vote for both of its
                           blocks, each vote routed to the replicas that saw that block. With
                           f + 1 members it makes a real fork, which is the positive control
                           (B10): the agreement checker must report it.

A conflicting block (byzantine.conflicting_block) keeps everything of the original except
its time, so it passes every stateless check and the header checks an honest backup makes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from consensus.pbft import messages as m
from consensus.sim.byzantine import RewritingEngine, conflicting_block, halves, split_broadcast
from consensus.sim.node import ByzantineWrapper, ChainParams
from consensus.types import Engine, Envelope, Event, NodeId, Output, Received
from protocol.crypto import SigningKey, sha256

_VOTED_MAX = 10_000


def _conflicting_pre_prepare(
    key: SigningKey, chain_id: str, message: object
) -> m.PrePrepare | None:
    if not isinstance(message, m.PrePrepare):
        return None
    return m.make_pre_prepare(
        key,
        chain_id=chain_id,
        view=message.view,
        seq=message.seq,
        block=conflicting_block(message.block),
        replica=message.replica,
    )


def equivocating_primary(
    *, second: Collection[int] | None = None, accomplices: Collection[int] = ()
) -> ByzantineWrapper:
    """Pre-prepares split between the replicas not in `second` and those in it (default:
    the two `halves` of the other validators); `accomplices` get both versions, so that
    colluding replicas can vote for both."""

    def wrap(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
        key = params.keys[node_id]
        first_half, second_half = halves(params, node_id)
        if second is not None:
            everyone = first_half + second_half
            first_half = [peer for peer in everyone if peer not in second]
            second_half = [peer for peer in everyone if peer in second]
        first_half += [NodeId(peer) for peer in accomplices if peer not in first_half]
        second_half += [NodeId(peer) for peer in accomplices if peer not in second_half]

        def rewrite(event: Event, output: Output) -> Output:
            return split_broadcast(
                output,
                first=first_half,
                second=second_half,
                mutate=lambda message: _conflicting_pre_prepare(key, params.chain_id, message),
            )

        return RewritingEngine(engine, rewrite)

    return wrap


def _second_vote(key: SigningKey, chain_id: str, message: object) -> tuple[object, ...]:
    if isinstance(message, m.Prepare | m.Commit):
        make = m.make_prepare if isinstance(message, m.Prepare) else m.make_commit
        other = make(
            key,
            chain_id=chain_id,
            view=message.view,
            seq=message.seq,
            digest=sha256(message.digest),
            replica=message.replica,
        )
        return (other,)
    return ()


def double_voting(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
    key = params.keys[node_id]

    def rewrite(event: Event, output: Output) -> Output:
        sends = list(output.send)
        for envelope in output.send:
            sends.extend(
                Envelope(envelope.to, extra)
                for extra in _second_vote(key, params.chain_id, envelope.message)
            )
        return Output(
            persist=output.persist, send=tuple(sends), commit=output.commit, fetch=output.fetch
        )

    return RewritingEngine(engine, rewrite)


def _votes_for(
    key: SigningKey, chain_id: str, node_id: NodeId, pre_prepare: m.PrePrepare
) -> list[object]:
    """PREPARE (unless we are the primary, who never prepares) and COMMIT for its digest."""
    view, seq, digest = pre_prepare.view, pre_prepare.seq, pre_prepare.digest
    votes: list[object] = []
    if pre_prepare.replica != node_id:
        votes.append(
            m.make_prepare(
                key, chain_id=chain_id, view=view, seq=seq, digest=digest, replica=node_id
            )
        )
    votes.append(
        m.make_commit(key, chain_id=chain_id, view=view, seq=seq, digest=digest, replica=node_id)
    )
    return votes


class Coalition:
    """Byzantine nodes with a side channel, for the positive control (B10).

    The primary equivocates: each pre-prepare goes as-is to the replicas in neither
    `second` nor the coalition, as a conflicting block to those in `second`, and both
    versions to the other members. It records which honest replicas saw which digest
    (`audience`), and every member, the primary included, then votes PREPARE/COMMIT for
    *every* pre-prepare it sees, sending each vote only to the replicas that saw that
    digest (an honest replica keeps the first vote it gets from each replica, so a vote for
    the other block would spoil its quorum). With f + 1 members this forks an honest
    cluster; with f or fewer it must not.
    """

    def __init__(self, *, members: Collection[int], second: Collection[int]) -> None:
        self.members = sorted(members)
        self.second = sorted(second)
        self.audience: dict[bytes, list[NodeId]] = {}  # digest -> honest replicas shown it

    def wrapper(self) -> ByzantineWrapper:
        def wrap(engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine:
            return RewritingEngine(engine, self._rewriter(params, node_id))

        return wrap

    def _rewriter(self, params: ChainParams, node_id: NodeId) -> Callable[[Event, Output], Output]:
        key = params.keys[node_id]
        others = [NodeId(i) for i in range(params.validators.size) if i != node_id]
        accomplices = [peer for peer in others if peer in self.members]
        second = [peer for peer in others if peer in self.second]
        first = [peer for peer in others if peer not in second and peer not in accomplices]
        voted: set[bytes] = set()

        def mutate(message: object) -> object | None:
            changed = _conflicting_pre_prepare(key, params.chain_id, message)
            if changed is not None:
                assert isinstance(message, m.PrePrepare)
                self._remember(message.digest, first)
                self._remember(changed.digest, second)
            return changed

        def rewrite(event: Event, output: Output) -> Output:
            output = split_broadcast(
                output, first=first + accomplices, second=second + accomplices, mutate=mutate
            )
            seen = [e.message for e in output.send if isinstance(e.message, m.PrePrepare)]
            if isinstance(event, Received) and isinstance(event.message, m.PrePrepare):
                seen.append(event.message)
            extra: list[Envelope] = []
            for pre_prepare in seen:
                marker = pre_prepare.view.to_bytes(8, "big") + pre_prepare.digest
                if marker in voted:
                    continue
                if len(voted) >= _VOTED_MAX:
                    voted.clear()  # bounded; voting again for an old digest is harmless
                voted.add(marker)
                targets = self.audience.get(pre_prepare.digest, others)
                targets = [peer for peer in [*targets, *accomplices] if peer != node_id]
                for vote in _votes_for(key, params.chain_id, node_id, pre_prepare):
                    extra.extend(Envelope(target, vote) for target in sorted(set(targets)))
            return Output(
                persist=output.persist,
                send=output.send + tuple(extra),
                commit=output.commit,
                fetch=output.fetch,
            )

        return rewrite

    def _remember(self, digest: bytes, audience: list[NodeId]) -> None:
        if len(self.audience) >= _VOTED_MAX:
            self.audience.clear()
        self.audience[digest] = list(audience)
