"""One worker thread that runs one blocking function for the event loop.

A module of its own because two parts need it: the engine driver (its slow synced
persists) and the commit pipeline (block executions).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

ArgumentT = TypeVar("ArgumentT")
ResultT = TypeVar("ResultT")


class BlockingWorker(Generic[ArgumentT, ResultT]):
    """One thread that runs one blocking function for the event loop, a call at a time, in
    submission order: the driver's slow synced persists have one, the commit pipeline's
    block executions another.

    Cheaper than `asyncio.to_thread` (about 25 µs of CPU per call against 50): a call is a
    plain future and a queue put, and the thread answers with one `call_soon_threadsafe`,
    where to_thread goes through a task, a context copy, the default executor's concurrent
    future (a Condition each) and a chained future. Both users await each call before the
    next, so one thread is all they need. It starts with the first call; `close` ends it.
    """

    def __init__(self, function: Callable[[ArgumentT], ResultT], *, name: str) -> None:
        self._function = function
        self._name = name
        self._calls: queue.SimpleQueue[
            tuple[ArgumentT, asyncio.Future[ResultT], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, argument: ArgumentT) -> asyncio.Future[ResultT]:
        """`function(argument)` in the thread; the future completes on this loop. Cancelling
        the future does not stop the call (a synced write is never abandoned halfway)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._calls.put((argument, future, loop))
        return future

    def close(self) -> None:
        """End the thread after the calls already submitted."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None

    def _serve(self) -> None:
        function = self._function
        while (call := self._calls.get()) is not None:
            argument, future, loop = call
            try:
                result = function(argument)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting task
                _answer(loop, _fail, future, error)
            else:
                _answer(loop, _succeed, future, result)


def _answer(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, *args)
    except RuntimeError:  # the loop closed while a call ran (shutdown without `settle`)
        log.debug("blocking call finished after its event loop closed")


def _succeed(future: asyncio.Future[ResultT], result: ResultT) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(error)
