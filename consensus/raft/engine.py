"""The Raft engine: Ongaro & Ousterhout (extended paper, and the thesis) over blocks, as a
pure state machine with the same `step(event) -> Output` contract as PBFT.

docs/RAFT.md is the long form; in short:

    §5.2 election       election.py: randomised timeouts drawn from the injected RNG, pre-vote
                        (thesis §9.6), check-quorum and the voter's leader lease (§6.2,
                        §4.2.3), leadership transfer with TimeoutNow (§3.10).
    §5.3 replication    replication.py: the leader turns the node's `Propose` into a block
                        entry carrying its seal signature, batches and pipelines
                        AppendEntries per follower; followers check the consistency of
                        (prev_index, prev_term), truncate conflicts, check each block, and
                        persist before acknowledging.
    §5.4.2 commit       only an entry of the current term is committed by counting replicas;
                        a new leader appends a no-op (§8) so earlier entries commit with it.
    §7 compaction       snapshot.py: executed entries older than a retention are dropped;
                        a follower behind the leader's base gets InstallSnapshot and
                        rebuilds the committed chain by fetching sealed blocks from peers.

Committed blocks leave in `Output.commit` strictly in height order, each with a leader
seal (kind SEAL_LEADER, round = the entry's term). Raft tolerates crashes, not lies.

State owned here: Figure 2's persistent state (term, voted_for, log: durable.py) and
volatile state (commit_index, applied_index — the last entry whose block was emitted —,
leader progress), plus the committed/executed heights the node reports back, timers in
ticks, and counters. `check_invariants` runs after every step (assertions stay on).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from consensus.outbox import Outbox
from consensus.raft import durable, election, replication, snapshot
from consensus.raft import messages as m
from consensus.raft.config import RaftConfig
from consensus.raft.log import RaftLog
from consensus.types import (
    NO_EXTRA,
    BlockExecuted,
    EngineStatus,
    Envelope,
    Event,
    Fetched,
    NodeId,
    Output,
    ProposalSlot,
    Propose,
    Received,
    Tick,
)
from protocol.block import Block
from protocol.crypto import HASH_BYTES, SigningKey
from protocol.seal import SEAL_LEADER, Seal
from protocol.sealed import SealedBlock

log = logging.getLogger(__name__)


class RaftStateLost(RuntimeError):
    """The durable Raft state does not cover the node's chain (a lost or foreign disk).
    Raft's safety rests on that state, so the node must not start (docs/RAFT.md)."""


ROLE_FOLLOWER = "follower"
ROLE_PRE_CANDIDATE = "pre-candidate"
ROLE_CANDIDATE = "candidate"
ROLE_LEADER = "leader"


class RaftEngine:
    def __init__(
        self,
        config: RaftConfig,
        *,
        key: SigningKey,
        restored: Mapping[bytes, bytes],
        committed_height: int,
        committed_hash: bytes,
        executed: Sequence[BlockExecuted] = (),
        rng: random.Random,
    ) -> None:
        """`restored` is every record this engine persisted; `committed_*` the node's
        chain store tip; `executed` at least the notices of (committed - P, committed]."""
        config.check()
        assert key.public_key == config.validators.public_keys[config.node_id], "wrong key"
        assert len(committed_hash) == HASH_BYTES
        assert committed_height >= 0
        self.config = config
        self.key = key
        self.me = config.node_id
        self.rng = rng
        self.validators_hash = config.validators.hash()
        state = durable.restore(restored)
        self.term = state.term
        self.voted_for = state.voted_for
        self.log = RaftLog(state.base, state.entries)
        self.committed_height = committed_height
        self.committed_hash = committed_hash
        self.commit_index = self.applied_index = self._restart_applied_index()
        self.executed: dict[int, BlockExecuted] = {}
        self.executed_height = 0  # the node replays committed-but-unexecuted blocks itself
        for notice in executed:
            assert notice.height <= committed_height, "executed beyond the committed chain"
            self.executed[notice.height] = notice
            self.executed_height = max(self.executed_height, notice.height)
        snapshot.prune_executed(self)
        self.role = ROLE_FOLLOWER
        self.leader: int | None = None
        self.votes: set[int] = set()
        self.progress: dict[int, replication.Progress] = {}
        self.last_heard: dict[int, int] = {}  # leader: peer -> tick of its last message
        self.leader_since = 0
        self.now = 0
        self.elapsed = 0  # ticks since the leader was last heard / the election timer reset
        self.timeout = 0
        self.heartbeat_elapsed = 0
        self.transfer_target: int | None = None
        self.transfer_elapsed = 0
        self.fetch_elapsed = config.fetch_retry_ticks - 1  # a pending fetch resumes at once
        self.counters: Counter[str] = Counter()
        election.reset_timer(self)
        log.info(
            "raft node=%d restarted term=%d last_index=%d commit=%d height=%d",
            self.me,
            self.term,
            self.log.last_index,
            self.commit_index,
            committed_height,
        )
        self.check_invariants()

    def _restart_applied_index(self) -> int:
        """Everything in the chain store is committed; the log covers it or, while a
        snapshot install is unfinished, the base is above it."""
        base = self.log.base
        if self.committed_height < base.height:
            return base.index  # snapshot pending: the rest arrives by block sync
        if self.committed_height > self.log.last_height:
            raise RaftStateLost(
                f"chain store at height {self.committed_height} but the durable Raft log ends "
                f"at {self.log.last_height}: this node's Raft records (term, vote, log) were "
                "lost; restarting it could vote twice in a term. Wipe the node and resync it."
            )
        index = self.log.index_of_height(self.committed_height)
        assert index is not None
        assert self.log.tip_hash_at(index) == self.committed_hash, "store and log disagree"
        return index

    # --- the contract -------------------------------------------------------------------

    def step(self, event: Event) -> Output:
        out = Outbox()
        if isinstance(event, Tick):
            self._on_tick(out)
        elif isinstance(event, Received):
            self._on_received(int(event.sender), event.message, out)
        elif isinstance(event, Propose):
            replication.on_propose(self, event.block, out)
        elif isinstance(event, BlockExecuted):
            snapshot.on_executed(self, event, out)
        elif isinstance(event, Fetched):
            snapshot.on_fetched(self, int(event.sender), event.blocks, out)
        else:
            raise AssertionError(f"unknown event {type(event).__name__}")
        self.check_invariants()
        return out.freeze()

    def transfer_leadership(self, target: NodeId | None = None) -> Output:
        """Graceful shutdown (thesis §3.10): hand leadership to the most up-to-date follower
        (or `target`) before stopping. The node calls this, honours the Output like any
        other, and waits a little (about one election timeout) before it stops."""
        out = Outbox()
        election.begin_transfer(self, None if target is None else int(target), out)
        self.check_invariants()
        return out.freeze()

    def status(self) -> EngineStatus:
        """The full snapshot, for RPC and metrics."""
        extra: dict[str, int | str] = dict(sorted(self.counters.items()))
        extra.update(
            commit_index=self.commit_index,
            applied_index=self.applied_index,
            last_index=self.log.last_index,
            last_term=self.log.last_term,
            log_base_index=self.log.base.index,
            log_base_height=self.log.base.height,
            executed_height=self.executed_height,
            snapshot_pending=int(self.snapshot_pending),
            fault_model="crash",
        )
        return self._status(extra)

    def step_status(self) -> EngineStatus:
        """What the driver reads after every step (term, leader, role, proposal slot):
        `status()` without `extra`, whose counters cost more than all the rest."""
        return self._status(NO_EXTRA)

    def _status(self, extra: Mapping[str, int | str]) -> EngineStatus:
        return EngineStatus(
            kind="raft",
            node_id=NodeId(self.me),
            committed_height=self.committed_height,
            round=self.term,
            leader=None if self.leader is None else NodeId(self.leader),
            role=self.role,
            proposal_slot=self.proposal_slot(),
            in_flight=max(0, self.log.last_height - self.committed_height),
            extra=extra,
        )

    def undecided_blocks(self) -> tuple[Block, ...]:
        """The blocks of the log entries above the committed height: a leader of a later
        term commits them once an entry of its own term commits. After a restart the node
        holds their txs out of its own proposals (node/custody.py); the log survives the
        restart, the pool does not, and a re-offered tx would otherwise be ordered again."""
        log = self.log
        blocks: list[Block] = []
        index = log.last_index  # heights never fall along the log: walk back from the tip
        while index > log.base.index and log.height_at(index) > self.committed_height:
            block = log.entry(index).block
            if block is not None:  # a no-op carries no txs
                blocks.append(block)
            index -= 1
        return tuple(reversed(blocks))

    def proposal_slot(self) -> ProposalSlot | None:
        """Only a leader, not handing over, with its chain caught up, with the exec fields of
        height - P known, and with fewer than `uncommitted_entries_max` uncommitted entries."""
        if self.role != ROLE_LEADER or self.transfer_target is not None or self.snapshot_pending:
            return None
        height = self.log.last_height + 1
        if self.executed_height < height - self.config.pipeline_depth:
            return None
        if self.log.last_index - self.commit_index >= self.config.uncommitted_entries_max:
            return None
        return ProposalSlot(height=height, prev_hash=self.log.tip_hash)

    @property
    def snapshot_pending(self) -> bool:
        """An installed snapshot whose blocks have not all arrived by block sync yet."""
        return self.committed_height < self.log.base.height

    # --- dispatch -----------------------------------------------------------------------

    def _on_tick(self, out: Outbox) -> None:
        self.now += 1
        if self.role == ROLE_LEADER:
            election.leader_tick(self, out)
            replication.leader_tick(self, out)
        else:
            snapshot.follower_tick(self, out)
            election.follower_tick(self, out)

    def _on_received(self, sender: int, message: object, out: Outbox) -> None:
        if sender == self.me or not 0 <= sender < self.config.replica_count:
            self.counters["ignored_bad_sender"] += 1
            return
        if not election.accept_term(self, sender, message, out):
            return
        if self.role == ROLE_LEADER:
            self.last_heard[sender] = self.now
        if isinstance(message, m.RequestVote):
            election.on_request_vote(self, sender, message, out)
        elif isinstance(message, m.RequestVoteReply):
            election.on_vote_reply(self, sender, message, out)
        elif isinstance(message, m.AppendEntries):
            replication.on_append_entries(self, sender, message, out)
        elif isinstance(message, m.AppendEntriesReply):
            replication.on_append_reply(self, sender, message, out)
        elif isinstance(message, m.InstallSnapshot):
            snapshot.on_install_snapshot(self, sender, message, out)
        elif isinstance(message, m.TimeoutNow):
            election.on_timeout_now(self, sender, message, out)
        else:
            self.counters["ignored_unknown_message"] += 1

    # --- helpers shared by the phase modules ------------------------------------------------

    def send(self, out: Outbox, to: int | None, message: m.RaftMessage) -> None:
        signed = m.sign_message(self.key, self.config.chain_id, message)
        out.send.append(Envelope(to=None if to is None else NodeId(to), message=signed))

    def persist_hard_state(self, out: Outbox) -> None:
        out.persist.append(durable.hard_state_record(self.term, self.voted_for))

    def peers(self) -> range:
        return range(self.config.replica_count)

    def advance_commit(self, index: int, out: Outbox) -> None:
        """Raise commit_index to `index` (never lower) and emit every block now committed."""
        if index <= self.commit_index:
            return
        assert index <= self.log.last_index, "cannot commit beyond the log"
        self.commit_index = index
        self.emit_commits(out)

    def emit_commits(self, out: Outbox) -> None:
        """Figure 2 "apply log[lastApplied]": each block entry up to commit_index, in order,
        sealed with its leader's signature. Blocks at or below the committed height (a
        restart, a snapshot) are already in the store."""
        if self.snapshot_pending:
            return  # blocks below the base come by block sync first
        while self.applied_index < self.commit_index:
            self.applied_index += 1
            entry = self.log.entry(self.applied_index)
            block = entry.block
            if block is None or block.height <= self.committed_height:
                continue
            assert block.height == self.committed_height + 1, "commits are consecutive"
            assert block.header.prev_hash == self.committed_hash, "commits link"
            block_hash = block.hash()
            seal = Seal(
                kind=SEAL_LEADER,
                round=entry.term,
                height=block.height,
                block_hash=block_hash,
                signatures=((entry.signer, entry.seal_signature),),
            )
            out.commit.append(SealedBlock(block=block, seal=seal))
            self.committed_height, self.committed_hash = block.height, block_hash
            log.debug(
                "raft node=%d term=%d committed index=%d height=%d",
                self.me,
                self.term,
                self.applied_index,
                block.height,
            )

    def check_invariants(self) -> None:
        lg = self.log
        lg.check_invariants()
        assert lg.base.index <= self.applied_index <= self.commit_index <= lg.last_index
        assert self.executed_height <= self.committed_height
        if not self.snapshot_pending:
            assert lg.height_at(self.applied_index) <= self.committed_height
        if self.role == ROLE_LEADER:
            assert self.leader == self.me
            assert self.voted_for == self.me
            assert set(self.progress) == set(self.peers()) - {self.me}
            for progress in self.progress.values():
                assert progress.match_index < progress.next_index <= lg.last_index + 1
        else:
            assert not self.progress
            assert self.transfer_target is None
        if self.role in (ROLE_CANDIDATE,):
            assert self.voted_for == self.me
        assert len(self.executed) <= self.config.pipeline_depth + 2
