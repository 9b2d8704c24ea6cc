"""One simulated validator: an engine plus, deterministically, what the real node does
around it (node/driver.py, node/executor.py, the mempool and the block builder).

State and what survives a crash:
    durable     `Output.persist` writes (a dict; None deletes), the committed chain of
                SealedBlocks and the executed application state. In the real node these are
                synced LevelDB batches, so a crash keeps all of them.
    volatile    the engine object, the pending tx pool, what this node has seen proposed,
                its history excerpt. A crash drops them; `restart` rebuilds the engine from
                the durable part through the test's `EngineFactory`.

Driver order (consensus/types.py): persist, then send, then commit, then fetch. Commits
execute at once, strictly in height order, and each execution is fed back to the engine as
`BlockExecuted` before anything else happens on this node.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Protocol

from consensus.sim.app import FakeApplication
from consensus.types import (
    BlockExecuted,
    Engine,
    Envelope,
    Event,
    FetchRequest,
    NodeId,
    Output,
    ProposalSlot,
    Propose,
    Received,
)
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.sealed import SealedBlock
from protocol.tx import Tx
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)

HISTORY_ENTRIES_MAX = 12  # the excerpt a failure message shows per node
STEPS_PER_EVENT_MAX = 10_000  # one event and the BlockExecuted notices it causes


class EngineFactory(Protocol):
    """Builds an engine for `node_id`, fresh or after a crash. `restored` holds every
    `Output.persist` write that survived; `committed` and `executed` are the node's durable
    chain and the executions of its blocks (equal lengths). Engine-agnostic: tests supply it."""

    def __call__(
        self,
        node_id: NodeId,
        *,
        restored: Mapping[bytes, bytes],
        committed: tuple[SealedBlock, ...],
        executed: tuple[BlockExecuted, ...],
    ) -> Engine: ...


class ByzantineWrapper(Protocol):
    """Wraps a freshly built engine to make the node byzantine (consensus/sim/byzantine.py);
    applied at every start, so the node stays byzantine across its own restarts."""

    def __call__(self, engine: Engine, *, params: ChainParams, node_id: NodeId) -> Engine: ...


BlockExtractor = Callable[[object], Iterable[Block]]


def blocks_in_message(message: object, *, depth: int = 3) -> list[Block]:
    """Blocks carried in a message's fields (dataclasses or msgspec Structs, and tuples of
    them), up to `depth` levels down. The proposer uses them to leave out txs that someone
    else already proposed."""
    if isinstance(message, Block):
        return [message]
    if depth == 0:
        return []
    if isinstance(message, tuple):
        return [block for item in message for block in blocks_in_message(item, depth=depth - 1)]
    names: Iterable[str]
    if is_dataclass(message):
        names = [item.name for item in fields(message)]
    else:
        names = getattr(type(message), "__struct_fields__", ())
    found: list[Block] = []
    for name in names:
        value = getattr(message, name)
        if isinstance(value, Block | tuple) or is_dataclass(value):
            found.extend(blocks_in_message(value, depth=depth - 1))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainParams:
    """What every node of one simulated chain shares (the genesis, in effect)."""

    chain_id: str
    validators: ValidatorSet
    keys: tuple[SigningKey, ...]
    pipeline_depth: int = 1
    block_txs_max: int = 64
    pending_txs_max: int = 10_000
    tick_ms: int = 10
    exec_delay_ticks: int = 0  # ticks between commit and execution (0: the same step)

    def __post_init__(self) -> None:
        assert len(self.keys) == self.validators.size
        assert all(
            key.public_key == public
            for key, public in zip(self.keys, self.validators.public_keys, strict=True)
        )
        assert self.pipeline_depth >= 1
        assert 1 <= self.block_txs_max <= self.pending_txs_max
        assert self.exec_delay_ticks >= 0


@dataclass(slots=True)
class NodeEffects:
    """What one step on a node asks of the cluster: messages to send, blocks to fetch."""

    sends: list[Envelope] = field(default_factory=list)
    fetches: list[FetchRequest] = field(default_factory=list)


@dataclass(slots=True)
class NodeCounters:
    steps: int = 0
    proposals: int = 0
    recommits: int = 0  # a height committed again with the same hash (tolerated)
    rejected_messages: int = 0  # failed the codec's decode or invalid() (byzantine senders)
    unencodable: int = 0  # a byzantine engine sent something its codec cannot encode
    pool_full: int = 0
    crashes: int = 0
    fetch_requests: int = 0
    fetch_unanswered: int = 0  # no reachable peer, or the peer had none of the blocks
    fetch_forged: int = 0  # answered by a byzantine peer, with forged blocks


class SimNode:
    def __init__(
        self,
        node_id: NodeId,
        *,
        params: ChainParams,
        factory: EngineFactory,
        wrapper: ByzantineWrapper | None = None,
        block_extractor: BlockExtractor = blocks_in_message,
    ) -> None:
        self.node_id = node_id
        self.params = params
        self.key = params.keys[node_id]
        self.byzantine = wrapper is not None
        self._wrapper = wrapper
        self._factory = factory
        self._block_extractor = block_extractor
        # durable
        self.durable: dict[bytes, bytes] = {}
        self.chain: list[SealedBlock] = []
        self.app = FakeApplication()
        # volatile
        self.engine: Engine | None = None
        self.pending: dict[bytes, Tx] = {}  # tx hash -> tx, in arrival order
        self.gossip_outbox: list[tuple[bytes, Tx]] = []  # admitted from a client, to forward
        self._seen_proposed: dict[int, set[bytes]] = {}  # height -> tx hashes
        self._last_slot: tuple[int, bytes, int] | None = None
        self._exec_queue: deque[tuple[int, int]] = deque()  # (due tick, height), in order
        self.history: deque[str] = deque(maxlen=HISTORY_ENTRIES_MAX)
        self.tick_every = 1  # clock skew: the engine sees one Tick per `tick_every` ticks
        self.violations: list[str] = []
        self.counters = NodeCounters()
        self.start()

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.engine is not None

    @property
    def height(self) -> int:
        return len(self.chain)

    def start(self) -> None:
        assert self.engine is None
        engine = self._factory(
            self.node_id,
            restored=dict(self.durable),
            committed=tuple(self.chain),
            executed=tuple(block.notice() for block in self.app.blocks),
        )
        if self._wrapper is not None:
            engine = self._wrapper(engine, params=self.params, node_id=self.node_id)
        self.engine = engine
        # Committed but not executed before the crash: the real node's executor replays
        # them from its store at startup, before anything else.
        for height in range(self.app.height + 1, self.height + 1):
            self._exec_queue.append((0, height))

    def crash(self) -> None:
        assert self.engine is not None, f"node {self.node_id} is already down"
        self.engine = None
        self.pending.clear()
        self.gossip_outbox.clear()
        self._seen_proposed.clear()
        self._last_slot = None
        self._exec_queue.clear()
        self.counters.crashes += 1

    # --- client side ---------------------------------------------------------------------

    def submit(self, tx: Tx, tx_hash: bytes, *, from_client: bool = True) -> bool:
        """Admit a tx to the pending pool; False if the node is down or the pool is full.
        A tx from a client is also queued for gossip, once (one hop, like a mempool that
        forwards what it admitted and dedupes the rest)."""
        if self.engine is None:
            return False
        if tx_hash in self.pending or self.app.has_executed(tx.replay_key):
            return True
        if len(self.pending) >= self.params.pending_txs_max:
            self.counters.pool_full += 1
            return False
        self.pending[tx_hash] = tx
        if from_client:
            self.gossip_outbox.append((tx_hash, tx))
        return True

    # --- stepping ------------------------------------------------------------------------

    def step(self, event: Event, *, now: int) -> NodeEffects:
        """Step the engine with `event`, then honour the Output in contract order,
        feeding each execution back until the node is quiet."""
        assert self.engine is not None, f"stepping crashed node {self.node_id}"
        if isinstance(event, Received):
            self._note_proposed(event.message)
        effects = NodeEffects()
        queue: deque[Event] = deque([event])
        steps = 0
        while queue:
            steps += 1
            assert steps <= STEPS_PER_EVENT_MAX, "an engine keeps producing work"
            output = self.engine.step(queue.popleft())
            self.counters.steps += 1
            queue.extend(self._apply(output, effects, now=now))
        return effects

    def _apply(self, output: Output, effects: NodeEffects, *, now: int) -> list[Event]:
        for key, value in output.persist:
            if value is None:
                self.durable.pop(key, None)
            else:
                self.durable[key] = value
        effects.sends.extend(output.send)
        notices: list[Event] = []
        for sealed in output.commit:
            notice = self._commit(sealed, now=now)
            if notice is not None:
                notices.append(notice)
        effects.fetches.extend(output.fetch)
        return notices

    def _commit(self, sealed: SealedBlock, *, now: int) -> BlockExecuted | None:
        """Append to the durable chain; execute now, or queue it when execution lags."""
        height = sealed.height
        if height <= self.height:
            if self.chain[height - 1].block.hash() == sealed.block.hash():
                self.counters.recommits += 1
            else:
                self.violations.append(f"tick {now}: committed a second block at {height}")
            return None
        if height != self.height + 1:
            self.violations.append(f"tick {now}: committed {height} after {self.height}")
            return None
        self.chain.append(sealed)
        self.history.append(f"t{now} commit h={height} txs={len(sealed.block.txs)}")
        for tx_hash in sealed.block.tx_hashes():
            self.pending.pop(tx_hash, None)
        for seen in [h for h in self._seen_proposed if h <= height]:
            del self._seen_proposed[seen]
        if self.params.exec_delay_ticks or self._exec_queue:
            self._exec_queue.append((now + self.params.exec_delay_ticks, height))
            return None
        return self._execute(height)

    def _execute(self, height: int) -> BlockExecuted:
        assert height == self.app.height + 1, "blocks execute strictly in height order"
        return self.app.execute(self.chain[height - 1].block).notice()

    def execute_due(self, *, now: int) -> NodeEffects:
        """Execute queued commits whose time has come, telling the engine of each."""
        effects = NodeEffects()
        while self.engine is not None and self._exec_queue and self._exec_queue[0][0] <= now:
            _, height = self._exec_queue.popleft()
            notice = self._execute(height)
            step_effects = self.step(notice, now=now)
            effects.sends.extend(step_effects.sends)
            effects.fetches.extend(step_effects.fetches)
        return effects

    def _note_proposed(self, message: object) -> None:
        for block in self._block_extractor(message):
            if block.height > self.height:
                self._seen_proposed.setdefault(block.height, set()).update(block.tx_hashes())

    # --- proposing -----------------------------------------------------------------------

    def proposal(self, *, now: int) -> Block | None:
        """The block this node would propose now, if its engine offers a slot and there is
        something worth proposing (pending txs, or a proof block for recent txs)."""
        if self.engine is None:
            return None
        status = self.engine.status()
        slot = status.proposal_slot
        if slot is None or (slot.height, slot.prev_hash, status.round) == self._last_slot:
            return None
        exec_fields = self._exec_fields(slot)
        if exec_fields is None:
            return None
        txs = self._choose_txs(slot)
        if not txs and not self._proof_block_due():
            return None
        self._last_slot = (slot.height, slot.prev_hash, status.round)
        exec_height, exec_app_hash, exec_results_root = exec_fields
        return make_block(
            chain_id=self.params.chain_id,
            height=slot.height,
            prev_hash=slot.prev_hash,
            time_ms=now * self.params.tick_ms,
            proposer=self.key.public_key,
            txs=txs,
            validators_hash=self.params.validators.hash(),
            exec_height=exec_height,
            exec_app_hash=exec_app_hash,
            exec_results_root=exec_results_root,
        )

    def _exec_fields(self, slot: ProposalSlot) -> tuple[int, bytes, bytes] | None:
        exec_height = slot.height - self.params.pipeline_depth
        if exec_height <= 0:
            return 0, ZERO_HASH, ZERO_HASH
        executed = self.app.at(exec_height)
        if executed is None:
            return None  # not executed here yet: wait, the slot stays offered
        return exec_height, executed.app_hash, executed.results_root

    def _choose_txs(self, slot: ProposalSlot) -> tuple[Tx, ...]:
        in_flight: set[bytes] = set()
        for height, tx_hashes in self._seen_proposed.items():
            if height < slot.height:
                in_flight |= tx_hashes
        chosen: list[Tx] = []
        for tx_hash, tx in self.pending.items():
            if tx_hash not in in_flight:
                chosen.append(tx)
                if len(chosen) >= self.params.block_txs_max:
                    break
        return tuple(chosen)

    def _proof_block_due(self) -> bool:
        """An empty block is worth proposing only while one of the last P committed blocks
        had txs: the header P heights later is what seals their results (protocol/block.py)."""
        recent = self.chain[-self.params.pipeline_depth :]
        return any(sealed.block.txs for sealed in recent)

    def propose(self, block: Block, *, now: int) -> NodeEffects:
        self.counters.proposals += 1
        self._seen_proposed.setdefault(block.height, set()).update(block.tx_hashes())
        self.history.append(f"t{now} propose h={block.height} txs={len(block.txs)}")
        return self.step(Propose(block), now=now)
