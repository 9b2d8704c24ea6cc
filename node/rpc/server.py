"""The RPC server: JSON-RPC 2.0 over HTTP POST "/", WebSocket "/websocket", and GET
"/<method>?arg=value" for curl (docs/RPC.md).

Built on aiohttp's low-level runner, with our own listening socket so that every accepted
connection passes a gate first (node/rpc/gate.py): beyond connections_open_max the gate
answers 503 and closes before aiohttp sees a byte, and a connection that does not finish its
request headers (or idles) within idle_timeout_s is closed. Bodies are read by hand, with
the cap checked before and while reading (Content-Length, chunked, or neither), so an
oversized body is refused with 413 without being read in full. Binds 127.0.0.1 unless
configured; sends CORS headers only for origins in an explicit allowlist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import WSCloseCode, web

from node.api import NodeApi
from node.events import EventBus
from node.metrics import NodeMetrics
from node.rpc.config import RpcConfig
from node.rpc.dispatch import Dispatcher
from node.rpc.gate import ConnectionGate
from node.rpc.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Request,
    RpcFault,
    decode_json,
    encode_json,
    error_response,
)
from node.rpc.methods import RpcMethods
from node.rpc.websocket import SubscribedClients, WsSession

log = logging.getLogger(__name__)

URI_REQUEST_ID = -1  # CometBFT answers GET calls with id -1
_JSON = "application/json"


class _BodyTooLarge(Exception):
    pass


class RpcServer:
    def __init__(
        self,
        node: NodeApi,
        *,
        config: RpcConfig | None = None,
        metrics: NodeMetrics | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self._config = config or RpcConfig()
        problem = self._config.invalid()
        if problem is not None:
            raise ValueError(f"invalid RPC config: {problem}")
        self._metrics = metrics
        self._bus: EventBus = bus if bus is not None else node.event_bus()
        self._methods = RpcMethods(node, self._config)
        self._dispatcher = Dispatcher(self._methods.table(), self._config, metrics)
        self._clients = SubscribedClients(self._config.ws_clients_max)
        self._websockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._gate: ConnectionGate | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None, "RPC server not started"
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return self._gate.open if self._gate is not None else 0

    async def start(self) -> None:
        app = web.Application(middlewares=[self._request_clock])
        app.router.add_post("/", self._handle_post)
        app.router.add_get("/", self._handle_index)
        app.router.add_get("/websocket", self._handle_websocket)
        app.router.add_get("/{method}", self._handle_get)
        app.router.add_route("OPTIONS", "/{tail:.*}", self._handle_preflight)
        if self._config.cors_allowed_origins:  # else no response gets CORS headers
            app.on_response_prepare.append(self._add_cors_headers)
        # lingering_time=0: after answering early (413), aiohttp must not read and discard
        # the rest of an oversized body; it closes the connection instead.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, lingering_time=0)
        await self._runner.setup()
        assert self._runner.server is not None
        self._gate = ConnectionGate(
            self._runner.server,
            connections_max=self._config.connections_open_max,
            idle_timeout_s=self._config.idle_timeout_s,
        )
        self._gate.on_refused = lambda: self._count_rejected("connections")
        self._gate.on_expired = lambda: self._count_rejected("idle_timeout")
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._gate, self._config.host, self._config.port, reuse_address=True
        )
        log.info("RPC server listening on %s:%d", self._config.host, self.port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for ws in list(self._websockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        await self._methods.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    def _count_rejected(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.rpc_rejected(reason)

    @web.middleware
    async def _request_clock(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Pauses the connection's idle deadline while a request is being handled."""
        connection = self._gate.connection(request.transport) if self._gate else None
        if connection is None:
            return await handler(request)
        connection.request_started()
        try:
            return await handler(request)
        finally:
            connection.request_finished()

    # --- HTTP ---

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read_body(request)
        except _BodyTooLarge:
            message = f"request body exceeds {self._config.body_bytes_max} bytes"
            return self._reject(413, "body_too_large", message)
        except TimeoutError:
            return self._reject(408, "body_timeout", "request body not received in time")
        try:
            document = decode_json(body)
        except RpcFault as fault:
            return self._json_response(error_response(None, fault))
        response = await self._dispatcher.handle_document(document, None)
        if response is None:
            return web.Response(status=204)
        return self._json_response(response)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._config.body_bytes_max
        declared = request.content_length
        if declared is not None and declared > limit:
            raise _BodyTooLarge
        content = request.content
        if content.is_eof():
            # The whole body came in with the headers (the usual case for a small call):
            # take it as is, without arming a read timeout for a read that cannot wait.
            body = content.read_nowait()
            if len(body) > limit:
                raise _BodyTooLarge
            return body
        buffer = bytearray()
        async with asyncio.timeout(self._config.body_read_timeout_s):
            async for chunk in request.content.iter_chunked(64 * 1024):
                buffer += chunk
                if len(buffer) > limit:
                    raise _BodyTooLarge
        return bytes(buffer)

    def _reject(self, status: int, reason: str, message: str) -> web.Response:
        if self._metrics is not None:
            self._metrics.rpc_rejected(reason)
        fault = RpcFault(INVALID_REQUEST, "Invalid Request", message)
        response = self._json_response(error_response(None, fault), status=status)
        response.force_close()  # the unread rest of the body is never read (lingering_time=0)
        return response

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        for key, value in request.query.items():
            if key in params:
                fault = RpcFault(INVALID_REQUEST, "Invalid Request", f"param {key[:40]!r} repeated")
                return self._json_response(error_response(URI_REQUEST_ID, fault), status=400)
            params[key] = value
        call = Request(id=URI_REQUEST_ID, method=method, params=params, notification=False)
        response = await self._dispatcher.call(call, None)
        not_found = response.get("error", {}).get("code") == METHOD_NOT_FOUND
        return self._json_response(response, status=404 if not_found else 200)

    async def _handle_index(self, request: web.Request) -> web.StreamResponse:
        return self._json_response({"methods": self._dispatcher.method_names})

    def _json_response(self, document: Any, *, status: int = 200) -> web.Response:
        try:
            body = encode_json(document)
        except (TypeError, ValueError, msgspec.EncodeError):
            log.exception("cannot encode an RPC response")
            request_id = document.get("id") if isinstance(document, dict) else None
            body = encode_json(
                error_response(request_id, RpcFault(INTERNAL_ERROR, "Internal error"))
            )
        return web.Response(body=body, status=status, content_type=_JSON)

    # --- CORS ---

    def _allowed_origin(self, request: web.BaseRequest) -> str | None:
        origin = request.headers.get("Origin")
        allowed = self._config.cors_allowed_origins
        if origin is None or not allowed:
            return None
        if "*" in allowed or origin in allowed:
            return origin
        return None

    async def _add_cors_headers(
        self, request: web.BaseRequest, response: web.StreamResponse
    ) -> None:
        origin = self._allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    async def _handle_preflight(self, request: web.Request) -> web.StreamResponse:
        if self._allowed_origin(request) is None:
            return web.Response(status=403)
        headers = {
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
        return web.Response(status=204, headers=headers)

    # --- WebSocket ---

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            max_msg_size=self._config.ws_message_bytes_max,
            heartbeat=self._config.ws_heartbeat_s,
            timeout=5.0,  # close handshake; a client that never answers is cut off
        )
        await ws.prepare(request)
        self._websockets.add(ws)
        if self._metrics is not None:
            self._metrics.rpc_ws_clients.inc()
        session = WsSession(
            ws,
            dispatcher=self._dispatcher,
            bus=self._bus,
            config=self._config,
            clients=self._clients,
            metrics=self._metrics,
        )
        try:
            await session.run()
        finally:
            self._websockets.discard(ws)
            if self._metrics is not None:
                self._metrics.rpc_ws_clients.dec()
        return ws
