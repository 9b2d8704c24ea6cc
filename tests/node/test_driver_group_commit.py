"""The engine driver's group commit (node/driver.py): steps go on while a synced write is
under way, one write then covers every step stepped since, and nothing a step outputs
(send, commit, fetch, an EngineCall's completion) happens before that step's records, and
those of every step before it, are durable."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

from consensus.types import (
    Engine,
    EngineStatus,
    Envelope,
    Event,
    FetchRequest,
    NodeId,
    Output,
    Received,
)
from node.driver import UNRELEASED_OUTPUTS_MAX, DriverStopped, EngineDriver
from protocol.sealed import SealedBlock
from tests.node.driver_fakes import LEADER_STATUS
from tests.p2p.p2p_helpers import wait_until

Records = Sequence[tuple[bytes, bytes | None]]


def _key(index: int) -> bytes:
    return b"step/%06d" % index


class Numbered:
    """Step i (0-based, over received messages) persists key i — and rewrites one shared
    key with i, so a write covering several steps must keep the newest value — sends
    envelope i, and every tenth step also fetches."""

    def __init__(self) -> None:
        self.stepped = 0

    def step(self, event: Event) -> Output:
        assert isinstance(event, Received)
        index = self.stepped
        self.stepped += 1
        return Output(
            persist=((_key(index), b"v"), (b"shared", b"%d" % index)),
            send=(Envelope(to=None, message=index),),
            fetch=(FetchRequest(from_height=index, to_height=index),) if index % 10 == 0 else (),
        )

    def status(self) -> EngineStatus:
        return LEADER_STATUS


class Disk:
    """A synced store in a test: what is durable, and every write's records. The first
    writes take a few ms, like a VM disk, so the driver moves them to its worker thread and
    the stepper runs on during them; `gate`, when set up, holds a write until opened."""

    def __init__(self, *, slow_s: float = 0.004) -> None:
        self.durable: dict[bytes, bytes | None] = {}
        self.writes: list[list[tuple[bytes, bytes | None]]] = []
        self.slow_s = slow_s
        self.lock = threading.Lock()

    def persist(self, records: Records) -> None:
        time.sleep(self.slow_s)
        with self.lock:
            for key, value in records:
                self.durable[key] = value
            self.writes.append(list(records))

    def holds(self, index: int) -> bool:
        with self.lock:
            return _key(index) in self.durable


async def _never_commit(_sealed: SealedBlock) -> None:
    raise AssertionError("nothing commits in this test")


def _bare_driver(
    engine: Engine,
    *,
    persist: Callable[[Records], None],
    send: Callable[[Envelope], None] = lambda _envelope: None,
    commit: Callable[[SealedBlock], Awaitable[None]] = _never_commit,
    fetch: Callable[[FetchRequest], None] = lambda _request: None,
) -> EngineDriver:
    """A driver with no ticks in a test's time (60 s) and room for every message offered."""
    return EngineDriver(
        engine,
        persist=persist,
        send=send,
        commit=commit,
        fetch=fetch,
        after_step=lambda _status: None,
        tick_ms=60_000,
        peer_inbox_max=1_000,
    )


def _driver(
    engine: Engine,
    disk: Disk,
    sent: list[object],
    fetched: list[int],
    commit: Callable[[SealedBlock], Awaitable[None]] = _never_commit,
) -> EngineDriver:
    def send(envelope: Envelope) -> None:
        index = envelope.message
        if isinstance(index, int):
            # The step's record and every earlier step's are durable before it leaves.
            assert all(disk.holds(earlier) for earlier in range(index + 1)), index
        sent.append(index)

    def fetch(request: FetchRequest) -> None:
        assert disk.holds(request.from_height)
        fetched.append(request.from_height)

    return _bare_driver(engine, persist=disk.persist, send=send, commit=commit, fetch=fetch)


async def test_steps_arriving_during_a_write_share_the_next_one_and_leave_only_after_it() -> None:
    engine = Numbered()
    disk = Disk()
    sent: list[object] = []
    fetched: list[int] = []
    driver = _driver(engine, disk, sent, fetched)
    runner = asyncio.create_task(driver.run())
    try:
        total = 0
        for burst in range(40):  # messages trickle in while writes are under way
            for _ in range(1 + burst % 7):
                assert driver.offer_peer(Received(NodeId(1), total))
                total += 1
            await asyncio.sleep(0.001)
        await wait_until(lambda: len(sent) == total)
    finally:
        runner.cancel()
        await driver.settle()
    assert engine.stepped == total
    assert sent == list(range(total))  # step order, each after its records were durable
    assert fetched == list(range(0, total, 10))
    # One write per group: far fewer writes than steps, each in step order, each holding
    # whole steps, and the shared key holds the newest step's value.
    assert len(disk.writes) < total / 2
    flat = [key for write in disk.writes for key, _ in write if key != b"shared"]
    assert flat == [_key(index) for index in range(total)]
    for write in disk.writes:
        shared = [value for key, value in write if key == b"shared"]
        steps = [int(key[5:]) for key, _ in write if key != b"shared"]
        assert shared == [b"%d" % step for step in steps]
    assert disk.durable[b"shared"] == b"%d" % (total - 1)
    assert driver.persists_total == len(disk.writes)


async def test_an_engine_call_completes_only_after_its_output_is_durable_and_sent() -> None:
    engine = Numbered()
    disk = Disk(slow_s=0.02)
    sent: list[object] = []
    driver = _driver(engine, disk, sent, [])
    runner = asyncio.create_task(driver.run())
    try:
        driver.offer_peer(Received(NodeId(1), 0))
        await driver.call(
            lambda _engine: Output(
                persist=((b"call", b"1"),), send=(Envelope(to=None, message="call"),)
            )
        )
        assert disk.durable[b"call"] == b"1"
        assert sent[0] == "call"  # control events are stepped before peer messages
    finally:
        runner.cancel()
        await driver.settle()


async def test_the_stepper_waits_when_the_unreleased_outputs_reach_their_bound() -> None:
    """A commit that waits for room (the executor is behind) holds the releaser; the
    stepper runs ahead by at most UNRELEASED_OUTPUTS_MAX outputs, then waits."""
    room = asyncio.Event()
    committed: list[int] = []

    class CommitsFirst(Numbered):
        def step(self, event: Event) -> Output:
            output = super().step(event)
            if self.stepped == 1:
                return Output(persist=output.persist, commit=(object(),))  # type: ignore[arg-type]
            return output

    async def commit(_sealed: SealedBlock) -> None:
        await room.wait()
        committed.append(1)

    engine = CommitsFirst()
    disk = Disk(slow_s=0.0)
    sent: list[object] = []
    driver = _driver(engine, disk, sent, [], commit=commit)  # a hand-off that waits for room
    total = UNRELEASED_OUTPUTS_MAX + 50
    runner = asyncio.create_task(driver.run())
    try:
        for index in range(total):
            assert driver.offer_peer(Received(NodeId(1), index))
        await wait_until(lambda: engine.stepped >= UNRELEASED_OUTPUTS_MAX)
        await asyncio.sleep(0.05)  # time to run further ahead, if it could
        assert engine.stepped == UNRELEASED_OUTPUTS_MAX
        assert driver.unreleased_depth == UNRELEASED_OUTPUTS_MAX
        assert sent == []
        assert committed == []
        room.set()
        await wait_until(lambda: len(sent) == total - 1)
    finally:
        runner.cancel()
        await driver.settle()
    assert committed == [1]
    assert engine.stepped == total
    assert sent == list(range(1, total))


async def test_a_caller_waiting_on_a_failed_driver_is_told_instead_of_hanging() -> None:
    """A failed synced write ends the driver (the node stops on it); an EngineCall queued
    behind it gets the error rather than waiting forever."""

    def broken_disk(_records: Records) -> None:
        raise OSError("disk gone")

    driver = _bare_driver(Numbered(), persist=broken_disk)
    runner = asyncio.create_task(driver.run())
    driver.offer_peer(Received(NodeId(1), 0))
    call = asyncio.create_task(driver.call(lambda _engine: Output(persist=((b"k", b"v"),))))
    async with asyncio.timeout(10):
        results = await asyncio.gather(runner, call, return_exceptions=True)
    assert isinstance(results[0], BaseExceptionGroup)
    assert isinstance(results[1], DriverStopped)
    await driver.settle()


async def test_outputs_ahead_of_a_groups_first_record_leave_before_its_write() -> None:
    """Two steps stepped before the releaser runs form one group: a commit-like output with
    nothing to persist, then a step with records. The first depends only on what is durable
    already, so it must not wait for the second's write."""
    happened: list[str] = []

    class Scripted(Numbered):
        def step(self, event: Event) -> Output:
            assert isinstance(event, Received)
            self.stepped += 1
            if event.message == "commit":
                return Output(send=(Envelope(to=None, message="commit"),))
            return Output(persist=((b"vote", b"1"),), send=(Envelope(to=None, message="vote"),))

    def persist(records: Records) -> None:
        happened.append("write " + ",".join(key.decode() for key, _ in records))

    def send(envelope: Envelope) -> None:
        happened.append(f"send {envelope.message}")

    driver = _bare_driver(Scripted(), persist=persist, send=send)
    driver.offer_peer(Received(NodeId(1), "commit"))
    driver.offer_peer(Received(NodeId(2), "vote"))
    runner = asyncio.create_task(driver.run())
    try:
        await wait_until(lambda: len(happened) == 3)
    finally:
        runner.cancel()
        await driver.settle()
    assert happened == ["send commit", "write vote", "send vote"]
    assert driver.persists_total == 1
