"""From a decoded JSON-RPC document to a response document, the same for HTTP and WebSocket.

This is the one place exceptions become JSON-RPC errors (STYLE.md §3.5): an RpcFault is the
client's problem and goes back as is; a timeout of an expensive call is REQUEST_TIMEOUT;
anything else is our bug, logged with its traceback and answered with a bare -32603 that leaks
nothing. Batch members run concurrently; each calls into the node in batch order before its
first await, so mempool admission keeps the batch's order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from node.metrics import NodeMetrics
from node.rpc.config import RpcConfig
from node.rpc.jsonrpc import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    REQUEST_TIMEOUT,
    Request,
    RpcFault,
    error_response,
    parse_envelope,
    result_response,
)
from node.rpc.methods import CallContext, MethodSpec, Session
from node.rpc.params import Params

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self, table: dict[str, MethodSpec], config: RpcConfig, metrics: NodeMetrics | None
    ) -> None:
        self._table = table
        self._config = config
        self._metrics = metrics

    @property
    def method_names(self) -> list[str]:
        return sorted(self._table)

    async def handle_document(self, document: Any, session: Session | None) -> Any:
        """The response document (object or list), or None when nothing must be sent back
        (only notifications)."""
        try:
            items = parse_envelope(document, batch_max=self._config.batch_requests_max)
        except RpcFault as fault:
            return error_response(None, fault)
        if len(items) == 1:  # a single request (the usual case) needs no task of its own
            responses = [await self._answer(items[0], session)]
        else:
            responses = await asyncio.gather(*(self._answer(item, session) for item in items))
        answered = [response for response in responses if response is not None]
        if isinstance(document, list):
            return answered or None
        return answered[0] if answered else None

    async def _answer(
        self, item: Request | dict[str, Any], session: Session | None
    ) -> dict[str, Any] | None:
        if isinstance(item, dict):
            return item
        response = await self.call(item, session)
        return None if item.notification else response

    async def call(self, request: Request, session: Session | None) -> dict[str, Any]:
        started = time.perf_counter()
        spec = self._table.get(request.method)
        try:
            if spec is None:
                raise RpcFault(
                    METHOD_NOT_FOUND, "Method not found", f"unknown method {request.method[:64]!r}"
                )
            result = await self._run(spec, request, session)
            response = result_response(request.id, result)
            code = 0
        except RpcFault as fault:
            response = error_response(request.id, fault)
            code = fault.code
        except Exception:  # the single place our own bugs become -32603 (module doc)
            log.exception("rpc method %s failed", request.method[:64])
            response = error_response(request.id, RpcFault(INTERNAL_ERROR, "Internal error"))
            code = INTERNAL_ERROR
        if self._metrics is not None:
            self._metrics.observe_rpc(request.method, code, time.perf_counter() - started)
        return response

    async def _run(self, spec: MethodSpec, request: Request, session: Session | None) -> Any:
        params = Params(request.params, spec.params)
        context = CallContext(request_id=request.id, session=session)
        if not spec.expensive:
            return await spec.handler(params, context)
        timeout_s = self._config.request_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await spec.handler(params, context)
        except TimeoutError:
            raise RpcFault(
                REQUEST_TIMEOUT, "Request timed out", f"not done within {timeout_s:g} s"
            ) from None
