"""The engine driver: the only place an engine meets asyncio (STYLE §3.3).

One task owns the engine and steps it with one event at a time; a second releases the
`Output`s in step order, honouring the contract of consensus/types.py: persist (synced)
before any send, then send, then hand commits to the executor (in order, awaiting room: a
committed block is never dropped), then start fetches.

Group commit. The stepper does not wait for a step's synced write: while one is under way
it goes on stepping the events that arrive, and the releaser then writes the persist
records of every step stepped since in one synced batch (in step order, so a key written
twice keeps its newer value), and only after that batch is durable sends, commits and
fetches their outputs, in step order. Nothing leaves the node before the records of its
step (and of every step before it) are durable, so a crash at any moment leaves a durable
state that is a prefix of the steps, with nothing sent beyond it: to the rest of the
cluster it is the same as a crash right after that prefix, which the engines already
tolerate. What it saves: with synced writes of 2-5 ms and two per block, one write per
step held every later message (the next block's votes) behind each of them; now one write
covers all the steps that queued up during the last. Outputs of a group ahead of its first
output with records (a commit, a retransmission) need no write and leave at once. At most
`UNRELEASED_OUTPUTS_MAX` outputs wait to be released; the stepper waits for room beyond that.

Where the synced batch is written depends on how long such writes take. While they are
quick (a running average under `INLINE_PERSIST_MAX_S`, 1 ms: a local SSD takes ~0.2 ms),
the driver writes on the event loop's thread: handing the write to a thread and back cost
more CPU than the write itself (two thread wakeups, ~0.1 ms each on a VM; two persists per
block). Once they are slow (a network disk, a busy one), each goes to the driver's worker
thread, so the loop keeps serving peers and clients (and the stepper keeps stepping)
during the wait; the average keeps being measured there, and quick writes bring the
persists back to the loop.

Inputs arrive on two paths:
- `offer_peer` for consensus messages from peers: a bounded queue; a full queue drops the
  message and counts it (a peer cannot make the node buffer without bound, and PBFT
  tolerates loss — the timers and retransmission through view change recover).
- `post_control` for the node's own events (ticks, proposals, executed blocks, fetched
  blocks). These are bounded by construction — one tick outstanding at a time, at most
  one proposal per slot, at most one executed notice per committed block — so they wait
  in a deque and are never dropped. They are served before peer messages.

`after_step` runs after every step with the engine's fresh status (`step_status()` where
the engine has it: everything but `extra`); the node uses it to notice a proposal slot and
post a `Propose`. A proposal posted for a slot that is gone by the time it is stepped is
the engine's to ignore (the node returns its txs to the pool when another block commits
at that height). The status may run ahead of what is durable by the steps not yet
released; nothing outside the node sees the difference.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from consensus.types import (
    Engine,
    EngineStatus,
    Envelope,
    Event,
    FetchRequest,
    Output,
    Received,
    Tick,
)
from node.blocking_worker import BlockingWorker
from protocol.sealed import SealedBlock

log = logging.getLogger(__name__)

PersistFn = Callable[[Sequence[tuple[bytes, bytes | None]]], None]
SendFn = Callable[[Envelope], None]
CommitFn = Callable[[SealedBlock], Awaitable[None]]
FetchFn = Callable[[FetchRequest], None]
AfterStepFn = Callable[[EngineStatus], None]
PersistObserverFn = Callable[[float, int], None]  # (seconds, outputs the synced write covered)


INLINE_PERSIST_MAX_S = 0.001  # persists run on the loop while they average less (above)
_PERSIST_AVERAGE_WEIGHT = 1 / 8  # of the newest write in the running average
UNRELEASED_OUTPUTS_MAX = 256  # outputs stepped but not yet released; then the stepper waits
STEPS_PER_YIELD = 64  # the stepper lets other tasks run at least this often


def after_step_status(engine: Engine) -> Callable[[], EngineStatus]:
    """The status the driver hands `after_step` after every step: the engine's cheaper
    `step_status()` where it has one (consensus/types.py), else `status()`."""
    status: Callable[[], EngineStatus] = getattr(engine, "step_status", engine.status)
    return status


class DriverStopped(RuntimeError):
    """The driver stopped (shut down, or a failed synced write) before an EngineCall's
    Output was honoured."""


class EngineCall:
    """A call into an engine method other than `step` (e.g. Raft's leadership transfer on
    shutdown), run by the stepping task like an event so its Output is honoured in order."""

    def __init__(self, call: Callable[[Engine], Output]) -> None:
        self.call = call
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class EngineDriver:
    def __init__(
        self,
        engine: Engine,
        *,
        persist: PersistFn,
        send: SendFn,
        commit: CommitFn,
        fetch: FetchFn,
        after_step: AfterStepFn,
        tick_ms: int,
        peer_inbox_max: int,
        on_persist: PersistObserverFn | None = None,
    ) -> None:
        assert tick_ms > 0
        assert peer_inbox_max > 0
        self._engine = engine
        self._persist = persist
        self._send = send
        self._commit = commit
        self._fetch = fetch
        self._after_step = after_step
        self._on_persist = on_persist
        self._step_status = after_step_status(engine)
        self._tick_s = tick_ms / 1000
        # A plain deque with the bound checked by hand: only this task takes from it, and
        # the wakeup event does the waiting, so asyncio.Queue's bookkeeping bought nothing.
        self._peer_inbox: deque[Received] = deque()
        self._peer_inbox_max = peer_inbox_max
        self._control: deque[Event | EngineCall] = deque()
        self._wakeup = asyncio.Event()
        self._tick_pending = False
        # Outputs stepped and not yet released, in step order, each with the future of the
        # EngineCall that made it (None for an event). Only the releaser takes from it.
        self._unreleased: deque[tuple[Output, asyncio.Future[None] | None]] = deque()
        self._release_wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._persisting: asyncio.Future[None] | None = None
        self._persister = BlockingWorker(persist, name="engine-persist")
        self._persist_average_s = 0.0  # running average of the synced writes (see above)
        self.peer_dropped_total = 0
        self.steps_total = 0
        self.step_seconds_total = 0.0
        self.persist_seconds_total = 0.0
        self.persists_total = 0

    # --- inputs -------------------------------------------------------------------------

    def offer_peer(self, event: Received) -> bool:
        """Never blocks. False (and counted) when the peer inbox is full."""
        if len(self._peer_inbox) >= self._peer_inbox_max:
            self.peer_dropped_total += 1
            return False
        self._peer_inbox.append(event)
        self._wakeup.set()
        return True

    async def call(self, call: Callable[[Engine], Output]) -> None:
        """Run `call(engine)` on the stepping task and wait until its Output is honoured."""
        engine_call = EngineCall(call)
        self._control.append(engine_call)
        self._wakeup.set()
        await engine_call.done

    def post_control(self, event: Event) -> None:
        """The node's own events; bounded by construction (see the module docstring)."""
        assert not isinstance(event, Received)
        self._control.append(event)
        self._wakeup.set()

    def status(self) -> EngineStatus:
        return self._engine.status()

    @property
    def engine(self) -> Engine:
        """Read-only use (status, optional engine methods handed to `call`)."""
        return self._engine

    @property
    def peer_inbox_depth(self) -> int:
        return len(self._peer_inbox)

    async def settle(self) -> None:
        """Wait for a persist already running in the worker thread, then end the thread
        (shutdown)."""
        if self._persisting is not None and not self._persisting.done():
            await asyncio.wait([self._persisting])
        self._persister.close()

    # --- tasks --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:  # a crash in any stops them all
                tasks.create_task(self._tick_forever(), name="engine-ticks")
                tasks.create_task(self._step_forever(), name="engine-steps")
                tasks.create_task(self._release_forever(), name="engine-release")
        finally:
            self._fail_waiting_calls()

    def _fail_waiting_calls(self) -> None:
        """Callers of `call` whose Output will never be honoured are told so."""
        waiting = [done for _, done in self._unreleased if done is not None]
        waiting += [event.done for event in self._control if isinstance(event, EngineCall)]
        for done in waiting:
            if not done.done():
                done.set_exception(DriverStopped("the engine driver stopped"))

    @property
    def unreleased_depth(self) -> int:
        """Outputs stepped whose persist, sends and commits have not happened yet."""
        return len(self._unreleased)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            if not self._tick_pending:  # one outstanding tick at most: a slow loop
                self._tick_pending = True  # skips ticks instead of queueing them
                self.post_control(Tick())

    async def _step_forever(self) -> None:
        since_yield = 0
        while True:
            while len(self._unreleased) >= UNRELEASED_OUTPUTS_MAX:
                self._room.clear()
                await self._room.wait()
            if since_yield >= STEPS_PER_YIELD:
                since_yield = 0
                await asyncio.sleep(0)
            event = await self._next_event()
            if isinstance(event, Tick):
                self._tick_pending = False
            self._step(event)
            since_yield += 1

    async def _next_event(self) -> Event | EngineCall:
        while True:
            if self._control:
                return self._control.popleft()
            if self._peer_inbox:
                return self._peer_inbox.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()

    def _step(self, event: Event | EngineCall) -> None:
        """Step the engine once and queue its Output for the releaser: only this task
        steps the engine, and the releaser honours outputs in the order stepped."""
        started = time.perf_counter()
        if isinstance(event, EngineCall):
            self._queue_release(event.call(self._engine), event.done)
            return
        output = self._engine.step(event)
        self.steps_total += 1
        self.step_seconds_total += time.perf_counter() - started
        if output:  # many steps (a tick, a vote short of a quorum) output nothing
            self._queue_release(output, None)
        self._after_step(self._step_status())

    def _queue_release(self, output: Output, done: asyncio.Future[None] | None) -> None:
        self._unreleased.append((output, done))
        self._release_wakeup.set()

    async def _release_forever(self) -> None:
        """Release the outputs stepped so far as one group: one synced batch for all their
        records, then their sends, commits and fetches in step order (module docstring)."""
        unreleased = self._unreleased
        while True:
            while not unreleased:
                self._release_wakeup.clear()
                await self._release_wakeup.wait()
            group = len(unreleased)  # the stepper may append more while this one persists
            outputs = list(itertools.islice(unreleased, group))
            # Outputs ahead of the first one with records depend only on what is durable
            # already (every earlier group's write is done): they leave now, not after the
            # write of steps stepped after them (a commit must not wait for the next
            # block's votes to be written).
            leading = next((i for i, (output, _) in enumerate(outputs) if output.persist), group)
            await self._release(leading)
            if leading < group:
                records = [record for output, _ in outputs[leading:] for record in output.persist]
                await self._write(records, group - leading)
                await self._release(group - leading)
            self._room.set()

    async def _release(self, count: int) -> None:
        """Honour the first `count` unreleased outputs, in step order; their records are
        durable."""
        unreleased = self._unreleased
        for _ in range(count):
            output, done = unreleased[0]
            for envelope in output.send:
                self._send(envelope)
            for sealed in output.commit:  # waits for room; a committed block is kept
                await self._commit(sealed)
            for request in output.fetch:
                self._fetch(request)
            unreleased.popleft()
            if done is not None and not done.done():
                done.set_result(None)

    async def _write(self, records: Sequence[tuple[bytes, bytes | None]], outputs: int) -> None:
        """One synced batch: on the loop while writes are quick, else in the worker thread."""
        started = time.perf_counter()
        if self._persist_average_s < INLINE_PERSIST_MAX_S:
            self._persist(records)
        else:
            # Shielded, so that shutdown cannot abandon a synced write halfway;
            # `settle` waits for it before the store closes.
            self._persisting = self._persister.run(records)
            await asyncio.shield(self._persisting)
        elapsed = time.perf_counter() - started
        average = self._persist_average_s
        self._persist_average_s = average + (elapsed - average) * _PERSIST_AVERAGE_WEIGHT
        self.persist_seconds_total += elapsed
        self.persists_total += 1
        if self._on_persist is not None:
            self._on_persist(elapsed, outputs)
