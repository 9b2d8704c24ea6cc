"""A fault-injecting TCP proxy for tests (tc netem is not available here, RELIABILITY §5).

Put it between two nodes: node B dials the proxy, the proxy dials node A. At run time a test
can add delay (with jitter; byte order is kept), make each forwarded chunk kill its
connection with some probability, partition (a black hole: nothing is forwarded either way,
sockets stay open, so TCP sees silence exactly as across a dead link; connections accepted
during a partition are not connected upstream until it heals), heal, and read byte counters.

Bounded: each direction of each connection holds at most `in_flight_chunks_max` chunks of at
most `chunk_bytes_max` bytes; a full queue stops reading (TCP backpressure), it never grows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

log = logging.getLogger(__name__)

_EOF = b""


@dataclass(slots=True)
class ProxyStats:
    bytes_to_target: int = 0
    bytes_to_client: int = 0
    connections_accepted: int = 0
    connections_dropped: int = 0  # killed by drop probability or drop_connections()


class _Link:
    """One proxied connection: client <-> proxy <-> target."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        self.client.transport.abort()
        if self.target is not None:
            self.target.transport.abort()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class FaultProxy:
    def __init__(
        self,
        *,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        rng: random.Random | None = None,
        chunk_bytes_max: int = 64 * 1024,
        in_flight_chunks_max: int = 64,
    ) -> None:
        self._target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._rng = rng or random.Random(0)
        self._chunk_bytes_max = chunk_bytes_max
        self._in_flight_chunks_max = in_flight_chunks_max
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._healed = asyncio.Event()
        self._healed.set()
        self._delay_s = 0.0
        self._jitter_s = 0.0
        self._drop_probability = 0.0
        self.port = 0
        self.stats = ProxyStats()

    # --- controls ---

    def set_delay(self, delay_ms: float, *, jitter_ms: float = 0.0) -> None:
        assert delay_ms >= 0
        assert jitter_ms >= 0
        self._delay_s = delay_ms / 1000
        self._jitter_s = jitter_ms / 1000

    def set_drop_probability(self, probability: float) -> None:
        """Each forwarded chunk ends its connection (both sides) with this probability."""
        assert 0.0 <= probability <= 1.0
        self._drop_probability = probability

    def partition(self) -> None:
        self._healed.clear()

    def heal(self) -> None:
        self._healed.set()

    @property
    def partitioned(self) -> bool:
        return not self._healed.is_set()

    def drop_connections(self) -> int:
        """Abort every live connection now; returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        self.stats.connections_dropped += len(links)
        return len(links)

    # --- lifecycle ---

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_client, host=self._listen[0], port=self._listen[1]
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        for link in links:
            link.abort()
        await asyncio.gather(*(t for link in links for t in link.tasks), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- forwarding ---

    async def _on_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.stats.connections_accepted += 1
        link = _Link(client_writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        link.tasks.append(task)
        try:
            await self._healed.wait()  # a partition also stops new connections getting through
            target_reader, target_writer = await asyncio.open_connection(*self._target)
            link.target = target_writer
            await asyncio.gather(
                self._direction(link, client_reader, target_writer, to_target=True),
                self._direction(link, target_reader, client_writer, to_target=False),
            )
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.debug("fault proxy link ended: %s", exc)
        finally:
            link.abort()
            self._links.discard(link)

    async def _direction(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        to_target: bool,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(self._in_flight_chunks_max)
        pump = asyncio.create_task(self._pump(link, reader, queue))
        link.tasks.append(pump)
        try:
            await self._deliver(queue, writer, to_target=to_target)
        finally:
            pump.cancel()

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        last_due = 0.0
        while True:
            await self._healed.wait()
            chunk = await reader.read(self._chunk_bytes_max)
            if chunk and self._rng.random() < self._drop_probability:
                self.stats.connections_dropped += 1
                link.abort()
                return
            delay = self._delay_s + self._rng.uniform(0.0, self._jitter_s)
            last_due = max(last_due, loop.time() + delay)  # jitter never reorders bytes
            await queue.put((last_due, chunk))
            if not chunk:
                return

    async def _deliver(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        *,
        to_target: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, chunk = await queue.get()
            wait_s = due - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            await self._healed.wait()
            if chunk == _EOF:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            if to_target:
                self.stats.bytes_to_target += len(chunk)
            else:
                self.stats.bytes_to_client += len(chunk)
            await writer.drain()
