"""The engine driver: the only place an engine meets asyncio (STYLE §3.3).

One task owns the engine and steps it with one event at a time. For each `Output` it
honours the contract of consensus/types.py in order: persist (one synced batch) before any
send, then send, then hand commits to the executor (in order, awaiting room: a committed
block is never dropped), then start fetches.

Where the synced batch is written depends on how long such writes take. While they are
quick (a running average under `INLINE_PERSIST_MAX_S`, 1 ms: a local SSD takes ~0.2 ms),
the driver writes on the event loop's thread: handing the write to a thread and back cost
more CPU than the write itself (two thread wakeups, ~0.1 ms each on a VM; two persists per
block). Once they are slow (a network disk, a busy one), each goes to the driver's worker
thread, so the loop keeps serving peers and clients during the wait; the average keeps
being measured there, and quick writes bring the persists back to the loop.

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
at that height).
"""

from __future__ import annotations

import asyncio
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


INLINE_PERSIST_MAX_S = 0.001  # persists run on the loop while they average less (above)
_PERSIST_AVERAGE_WEIGHT = 1 / 8  # of the newest write in the running average


def after_step_status(engine: Engine) -> Callable[[], EngineStatus]:
    """The status the driver hands `after_step` after every step: the engine's cheaper
    `step_status()` where it has one (consensus/types.py), else `status()`."""
    status: Callable[[], EngineStatus] = getattr(engine, "step_status", engine.status)
    return status


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
    ) -> None:
        assert tick_ms > 0
        assert peer_inbox_max > 0
        self._engine = engine
        self._persist = persist
        self._send = send
        self._commit = commit
        self._fetch = fetch
        self._after_step = after_step
        self._step_status = after_step_status(engine)
        self._tick_s = tick_ms / 1000
        # A plain deque with the bound checked by hand: only this task takes from it, and
        # the wakeup event does the waiting, so asyncio.Queue's bookkeeping bought nothing.
        self._peer_inbox: deque[Received] = deque()
        self._peer_inbox_max = peer_inbox_max
        self._control: deque[Event | EngineCall] = deque()
        self._wakeup = asyncio.Event()
        self._tick_pending = False
        self._persisting: asyncio.Future[None] | None = None
        self._persister = BlockingWorker(persist, name="engine-persist")
        self._persist_average_s = 0.0  # running average of the synced writes (see above)
        self.peer_dropped_total = 0
        self.steps_total = 0
        self.step_seconds_total = 0.0
        self.persist_seconds_total = 0.0

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
        async with asyncio.TaskGroup() as tasks:  # a crash in either stops both
            tasks.create_task(self._tick_forever(), name="engine-ticks")
            tasks.create_task(self._step_forever(), name="engine-steps")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            if not self._tick_pending:  # one outstanding tick at most: a slow loop
                self._tick_pending = True  # skips ticks instead of queueing them
                self.post_control(Tick())

    async def _step_forever(self) -> None:
        while True:
            event = await self._next_event()
            if isinstance(event, Tick):
                self._tick_pending = False
            await self._step(event)

    async def _next_event(self) -> Event | EngineCall:
        while True:
            if self._control:
                return self._control.popleft()
            if self._peer_inbox:
                return self._peer_inbox.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _step(self, event: Event | EngineCall) -> None:
        """Step the engine once and honour its Output before the next step: only this task
        steps the engine, so the persist-send-commit order holds across steps too."""
        started = time.perf_counter()
        if isinstance(event, EngineCall):
            output = event.call(self._engine)
            await self._honour(output)
            event.done.set_result(None)
            return
        output = self._engine.step(event)
        self.steps_total += 1
        self.step_seconds_total += time.perf_counter() - started
        if output:  # many steps (a tick, a vote short of a quorum) output nothing
            await self._honour(output)
        self._after_step(self._step_status())

    async def _honour(self, output: Output) -> None:
        if output.persist:  # 1. durable first
            started = time.perf_counter()
            if self._persist_average_s < INLINE_PERSIST_MAX_S:
                self._persist(output.persist)
            else:
                # Shielded, so that shutdown cannot abandon a synced write halfway;
                # `settle` waits for it before the store closes.
                self._persisting = self._persister.run(output.persist)
                await asyncio.shield(self._persisting)
            elapsed = time.perf_counter() - started
            average = self._persist_average_s
            self._persist_average_s = average + (elapsed - average) * _PERSIST_AVERAGE_WEIGHT
            self.persist_seconds_total += elapsed
        for envelope in output.send:  # 2. then send
            self._send(envelope)
        for sealed in output.commit:  # 3. then hand over in order; waits for room
            await self._commit(sealed)
        for request in output.fetch:  # 4. then fetch
            self._fetch(request)
