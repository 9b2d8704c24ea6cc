"""Connection limits applied below aiohttp: a cap on open connections and an idle/header
deadline.

aiohttp has no connection limit and no header-read timeout of its own (the slowloris hole
sei-chain closed in CometBFT with ReadHeaderTimeout). So the listening socket's protocol
factory is wrapped:

- Up to `connections_max` connections get aiohttp's protocol, wrapped to count its close.
  Any connection beyond that gets a tiny protocol that writes one 503 response with a
  JSON-RPC error and closes. Counting happens in the factory call itself, so many accepts in
  one loop iteration cannot overshoot the cap.
- Each connection has a deadline of `idle_timeout_s` that runs whenever no request is being
  handled: from accept until the first request's headers are parsed, and again from the end
  of each request until the next one. A client that trickles headers, or idles on
  keep-alive, is closed when it runs out. The server's middleware calls
  `request_started` / `request_finished`; a WebSocket stays exempt while it is open.
  The deadline is lazy: a request only notes when the connection went idle, and the one
  timer per connection, when it fires, closes the connection if it has been idle that long
  or else waits again for the rest. So a keep-alive client's calls arm no timer each (a
  busy connection sees one timer per `idle_timeout_s`, not one per request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_REFUSAL_BODY = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Server busy",'
    b'"data":"too many open connections"}}'
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n\r\n" + _REFUSAL_BODY
)


class ConnectionGate:
    def __init__(
        self,
        inner: Callable[[], asyncio.BaseProtocol],
        *,
        connections_max: int,
        idle_timeout_s: float,
    ) -> None:
        assert connections_max >= 1
        assert idle_timeout_s > 0
        self._inner = inner
        self.connections_max = connections_max
        self.idle_timeout_s = idle_timeout_s
        self.open = 0
        self.refused_total = 0
        self.expired_total = 0
        self.on_refused: Callable[[], None] | None = None
        self.on_expired: Callable[[], None] | None = None
        self._by_transport: dict[asyncio.BaseTransport, _Counted] = {}

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open >= self.connections_max:
            self.refused_total += 1
            if self.on_refused is not None:
                self.on_refused()
            log.warning("refusing connection: %d already open", self.open)
            return _Refusal()
        self.open += 1
        return _Counted(self._inner(), self)

    def connection(self, transport: asyncio.BaseTransport | None) -> _Counted | None:
        """The gate's record of a live connection (None if unknown or already closed)."""
        if transport is None:
            return None
        return self._by_transport.get(transport)

    def _opened(self, counted: _Counted, transport: asyncio.BaseTransport) -> None:
        self._by_transport[transport] = counted

    def _closed(self, counted: _Counted) -> None:
        if counted.transport is not None:
            self._by_transport.pop(counted.transport, None)
        self.open -= 1
        assert self.open >= 0

    def _expired(self) -> None:
        self.expired_total += 1
        if self.on_expired is not None:
            self.on_expired()


class _Refusal(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSAL)
        transport.close()


class _Counted(asyncio.Protocol):
    """Forwards every protocol callback to aiohttp's handler; counts the close once and
    runs the idle deadline between requests."""

    def __init__(self, inner: asyncio.BaseProtocol, gate: ConnectionGate) -> None:
        assert isinstance(inner, asyncio.Protocol)
        self._inner = inner
        self._gate: ConnectionGate | None = gate
        self.transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._requests_active = 0
        self._idle_since = 0.0  # loop time at which the last request finished
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_started(self) -> None:
        self._requests_active += 1

    def request_finished(self) -> None:
        self._requests_active -= 1
        assert self._requests_active >= 0
        if self._requests_active == 0 and self._loop is not None:
            self._idle_since = self._loop.time()
            if self._deadline is None:
                self._start_deadline(self._idle_since)

    def _start_deadline(self, idle_since: float) -> None:
        """Fire when a connection idle since `idle_since` runs out of time."""
        assert self._deadline is None
        if self._gate is not None and self.transport is not None and self._loop is not None:
            when = idle_since + self._gate.idle_timeout_s
            self._deadline = self._loop.call_at(when, self._expire)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """Close the connection if it has been idle for the whole timeout; if a request is
        running, `request_finished` arms the deadline again; if one ran since the deadline
        was armed, wait for the rest of the time since it finished."""
        self._deadline = None
        if self._gate is None or self.transport is None or self._requests_active:
            return
        assert self._loop is not None
        if self._loop.time() < self._idle_since + self._gate.idle_timeout_s:
            self._start_deadline(self._idle_since)
            return
        self._gate._expired()
        log.debug("closing a connection idle for %.1f s", self._gate.idle_timeout_s)
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._idle_since = self._loop.time()
        if self._gate is not None:
            self._gate._opened(self, transport)
        self._start_deadline(self._idle_since)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self._gate is not None:
            self._gate._closed(self)
            self._gate = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
