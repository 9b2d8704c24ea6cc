"""Raft's own safety properties (extended paper, Figure 3), checked in the simulator.

    election safety       at most one leader is elected in a given term;
    leader append-only    a leader never overwrites or deletes entries in its log, only
                          appends;
    log matching          if two logs contain an entry with the same index and term, the logs
                          are identical in all entries up through that index;
    leader completeness   an entry committed in a term is present in the logs of the leaders
                          of all higher terms;
    state machine safety  if a server has applied an entry at an index, no other server ever
                          applies a different entry at that index.

The generic checkers (checkers.py) already compare committed blocks per height; these look
inside the engines. They need to see every step, not just the end of a run, so the engine
factory is wrapped (`observed_factory`): after each step the wrapper hands the engine to a
`RaftHistory`, which records leaders per term, commits per index and the leader's log tip,
and raises `cluster.fail(...)` at the first violation. `RaftHistory.check` (install it with
`attach`, which also adds it to `Cluster.extra_checkers`) compares the logs of live nodes for
Log Matching whenever the cluster checks safety.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consensus.raft.engine import RaftEngine
from consensus.types import (
    BlockExecuted,
    Engine,
    EngineStatus,
    Event,
    NodeId,
    Output,
)
from protocol.sealed import SealedBlock

if TYPE_CHECKING:
    from consensus.sim.cluster import Cluster
    from consensus.sim.node import EngineFactory

EntryId = tuple[int, bytes | None]  # (term, block hash or None for a no-op)


def entry_id(engine: RaftEngine, index: int) -> EntryId:
    lg = engine.log
    if index == lg.base.index:
        return lg.base.term, lg.base.block_hash if lg.base.index else None
    entry = lg.entry(index)
    return entry.term, None if entry.block is None else entry.block.hash()


@dataclass(slots=True)
class RaftHistory:
    """What every engine did, across crashes, for the Figure 3 properties."""

    cluster: Cluster | None = None
    leaders: dict[int, int] = field(default_factory=dict)  # term -> the node that led it
    committed: dict[int, tuple[EntryId, int]] = field(default_factory=dict)  # index -> (id, term)
    applied: dict[int, EntryId] = field(default_factory=dict)  # index -> the entry applied
    _tips: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # node -> (term, i, t)
    checks: int = 0

    def attach(self, cluster: Cluster) -> None:
        self.cluster = cluster
        cluster.extra_checkers.append(self.check)

    def _fail(self, property_name: str, detail: str) -> AssertionError:
        if self.cluster is None:
            return AssertionError(f"{property_name}: {detail}")
        return self.cluster.fail(property_name, detail)

    # --- per step ------------------------------------------------------------------------

    def observe(self, node_id: int, engine: RaftEngine, *, applied_before: int) -> None:
        self.checks += 1
        if engine.role == "leader":
            self._election_safety(node_id, engine)
            self._leader_append_only(node_id, engine)
        else:
            self._tips.pop(node_id, None)
        self._state_machine_safety(node_id, engine, applied_before)

    def _election_safety(self, node_id: int, engine: RaftEngine) -> None:
        leader = self.leaders.setdefault(engine.term, node_id)
        if leader != node_id:
            raise self._fail(
                "election safety", f"term {engine.term}: nodes {leader} and {node_id} both lead"
            )

    def _leader_append_only(self, node_id: int, engine: RaftEngine) -> None:
        lg = engine.log
        previous = self._tips.get(node_id)
        if previous is None or previous[0] != engine.term:
            self._leader_completeness(node_id, engine)
        elif lg.term_at(previous[1]) != previous[2]:
            raise self._fail(
                "leader append-only",
                f"node {node_id} term {engine.term}: entry {previous[1]} changed or vanished",
            )
        self._tips[node_id] = (engine.term, lg.last_index, lg.last_term)

    def _leader_completeness(self, node_id: int, engine: RaftEngine) -> None:
        """On becoming leader: every entry committed in an earlier term is in our log."""
        lg = engine.log
        for index, (committed_id, commit_term) in sorted(self.committed.items()):
            if commit_term >= engine.term or index < lg.base.index:
                continue  # committed later, or compacted (the base is committed state)
            if index > lg.last_index or entry_id(engine, index) != committed_id:
                raise self._fail(
                    "leader completeness",
                    f"node {node_id} leads term {engine.term} without entry {index} "
                    f"committed in term {commit_term}",
                )

    def _state_machine_safety(self, node_id: int, engine: RaftEngine, applied_before: int) -> None:
        lg = engine.log
        first = max(applied_before + 1, lg.base.index + 1)
        for index in range(first, engine.applied_index + 1):
            applied = entry_id(engine, index)
            seen = self.applied.setdefault(index, applied)
            if seen != applied:
                raise self._fail(
                    "state machine safety",
                    f"node {node_id} applied {applied} at index {index}, another node {seen}",
                )
            self.committed.setdefault(index, (applied, engine.term))

    # --- at check time -------------------------------------------------------------------

    def check(self, cluster: Cluster) -> None:
        """Log Matching over every pair of live nodes' logs."""
        engines = [
            (int(node.node_id), _raft(node.engine))
            for node in cluster.nodes
            if node.engine is not None
        ]
        for position, (left_id, left) in enumerate(engines):
            for right_id, right in engines[position + 1 :]:
                _check_log_matching(self, left_id, left, right_id, right)


def _check_log_matching(
    history: RaftHistory, left_id: int, left: RaftEngine, right_id: int, right: RaftEngine
) -> None:
    low = max(left.log.base.index, right.log.base.index) + 1
    high = min(left.log.last_index, right.log.last_index)
    matched_up_to = None
    for index in range(high, low - 1, -1):
        if left.log.term_at(index) == right.log.term_at(index):
            matched_up_to = index
            break
    if matched_up_to is None:
        return
    for index in range(low, matched_up_to + 1):
        if entry_id(left, index) != entry_id(right, index):
            raise history._fail(
                "log matching",
                f"nodes {left_id} and {right_id} agree on entry {matched_up_to} but differ "
                f"at {index}",
            )


def _raft(engine: Engine) -> RaftEngine:
    inner = engine.inner if isinstance(engine, ObservedEngine) else engine
    assert isinstance(inner, RaftEngine), f"not a Raft engine: {type(inner).__name__}"
    return inner


class ObservedEngine:
    """A Raft engine that reports itself to a `RaftHistory` after every step."""

    def __init__(self, inner: RaftEngine, *, node_id: int, history: RaftHistory) -> None:
        self.inner = inner
        self._node_id = node_id
        self._history = history
        history.observe(node_id, inner, applied_before=inner.applied_index)

    def step(self, event: Event) -> Output:
        applied_before = self.inner.applied_index
        output = self.inner.step(event)
        self._history.observe(self._node_id, self.inner, applied_before=applied_before)
        return output

    def status(self) -> EngineStatus:
        return self.inner.status()

    def transfer_leadership(self, target: NodeId | None = None) -> Output:
        output = self.inner.transfer_leadership(target)
        self._history.observe(self._node_id, self.inner, applied_before=self.inner.applied_index)
        return output


def observed_factory(factory: EngineFactory, history: RaftHistory) -> EngineFactory:
    def build(
        node_id: NodeId,
        *,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed: tuple[BlockExecuted, ...],
    ) -> Engine:
        engine = factory(node_id, restored=restored, committed=committed, executed=executed)
        return ObservedEngine(_raft(engine), node_id=int(node_id), history=history)

    return build
