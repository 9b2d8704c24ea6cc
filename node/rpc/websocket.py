"""JSON-RPC over one WebSocket connection, with event subscriptions.

Per connection: a receive loop (messages are capped by aiohttp's max_msg_size), at most
ws_inflight_requests_max calls running at once (beyond that the socket is not read until one
finishes: TCP backpressure, not a growing task set), and one pump task per subscription
that forwards events from its bounded EventBus queue. A client that does not read fast
enough overflows a queue; the bus closes that subscription and this session closes the
whole connection with code 1008 and the reason, and counts it. Nothing a client
does can make the publisher wait or memory grow past the caps.

Event messages follow CometBFT: the id is the subscribe request's id plus "#event", and the
result holds the query, the event data ({"type": kind, "height": h, "value": data}) and the
event attributes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from node.api import NodeEvent
from node.events import (
    SLOW_CONSUMER,
    EventBus,
    QueryParseError,
    Subscription,
    SubscriptionClosed,
    SubscriptionLimitError,
    parse_subscription_query,
)
from node.metrics import NodeMetrics
from node.rpc.config import RpcConfig
from node.rpc.dispatch import Dispatcher
from node.rpc.jsonrpc import (
    PARSE_ERROR,
    SUBSCRIPTION_LIMIT,
    JsonId,
    RpcFault,
    decode_json,
    encode_json,
    error_response,
    invalid_params,
)

log = logging.getLogger(__name__)

CLOSE_REASON_BYTES_MAX = 120  # RFC 6455: a close frame's payload is at most 125 bytes


class SubscribedClients:
    """Counts connections holding at least one subscription (max_subscription_clients)."""

    def __init__(self, clients_max: int) -> None:
        self.clients_max = clients_max
        self.count = 0


class WsSession:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        dispatcher: Dispatcher,
        bus: EventBus,
        config: RpcConfig,
        clients: SubscribedClients,
        metrics: NodeMetrics | None,
    ) -> None:
        self._ws = ws
        self._dispatcher = dispatcher
        self._bus = bus
        self._config = config
        self._clients = clients
        self._metrics = metrics
        self._subscriptions: dict[str, Subscription] = {}
        self._pumps: set[asyncio.Task[None]] = set()
        self._calls: set[asyncio.Task[None]] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._call_slots = asyncio.Semaphore(config.ws_inflight_requests_max)
        self._closing = False

    # --- Session protocol used by subscribe/unsubscribe ---

    def subscribe(self, query_text: str, request_id: JsonId) -> None:
        try:
            query = parse_subscription_query(query_text)
        except QueryParseError as error:
            raise invalid_params(f"query: {error}") from None
        if query.text in self._subscriptions:
            raise invalid_params(f"already subscribed to {query.text!r}")
        if len(self._subscriptions) >= self._config.ws_subscriptions_per_client_max:
            limit = self._config.ws_subscriptions_per_client_max
            raise RpcFault(
                SUBSCRIPTION_LIMIT, "Too many subscriptions", f"at most {limit} per client"
            )
        first = not self._subscriptions
        if first and self._clients.count >= self._clients.clients_max:
            limit = self._clients.clients_max
            raise RpcFault(
                SUBSCRIPTION_LIMIT, "Too many subscribed clients", f"at most {limit} clients"
            )
        try:
            subscription = self._bus.subscribe(
                query, queue_events_max=self._config.ws_event_queue_max
            )
        except SubscriptionLimitError as error:
            raise RpcFault(SUBSCRIPTION_LIMIT, "Too many subscriptions", str(error)) from None
        if first:
            self._clients.count += 1
        self._subscriptions[query.text] = subscription
        subscription.add_close_callback(self._on_subscription_closed)
        event_id = f"{request_id}#event"
        self._start_task(self._pump(subscription, event_id), self._pumps)
        self._gauge_subscriptions(+1)

    def unsubscribe(self, query_text: str) -> None:
        try:
            query = parse_subscription_query(query_text)
        except QueryParseError as error:
            raise invalid_params(f"query: {error}") from None
        subscription = self._subscriptions.get(query.text)
        if subscription is None:
            raise invalid_params(f"not subscribed to {query.text!r}")
        subscription.close("unsubscribed")

    def unsubscribe_all(self) -> None:
        for subscription in list(self._subscriptions.values()):
            subscription.close("unsubscribed")

    # --- connection lifetime ---

    async def run(self) -> None:
        """Serve until the client goes away or is dropped; always cleans up.

        Backpressure: with ws_inflight_requests_max calls running, the loop stops reading
        until one finishes, so a client that floods requests (or never reads its answers)
        is slowed by TCP flow control instead of growing our task set."""
        try:
            async for message in self._ws:
                if message.type == WSMsgType.TEXT:
                    await self._call_slots.acquire()
                    self._start_task(self._handle_and_release(message.data), self._calls)
                elif message.type == WSMsgType.BINARY:
                    fault = RpcFault(PARSE_ERROR, "Parse error", "send JSON in text frames")
                    await self._send(error_response(None, fault))
                elif message.type == WSMsgType.ERROR:
                    log.debug("websocket error: %s", self._ws.exception())
                    break
        finally:
            await self._cleanup()

    async def _handle_and_release(self, text: str) -> None:
        try:
            await self._handle(text)
        finally:
            self._call_slots.release()

    async def _handle(self, text: str) -> None:
        try:
            document = decode_json(text)
        except RpcFault as fault:
            await self._send(error_response(None, fault))
            return
        response = await self._dispatcher.handle_document(document, self)
        if response is not None:
            await self._send(response)

    async def _send(self, document: Any) -> None:
        if self._ws.closed:
            return
        try:
            text = encode_json(document).decode("utf-8")
        except (TypeError, ValueError, msgspec.EncodeError):
            log.exception("cannot encode a websocket message; dropped")
            return
        try:
            await self._ws.send_str(text)
        except (ConnectionError, RuntimeError) as error:
            log.debug("websocket send failed: %s", error)

    async def _pump(self, subscription: Subscription, event_id: str) -> None:
        while True:
            try:
                event = await subscription.next()
            except SubscriptionClosed:
                return
            await self._send(
                {"jsonrpc": "2.0", "id": event_id, "result": _event_json(subscription, event)}
            )

    def _on_subscription_closed(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.query.text, None)
        self._gauge_subscriptions(-1)
        if not self._subscriptions:
            self._clients.count -= 1
            assert self._clients.count >= 0
        reason = subscription.close_reason or ""
        if reason.startswith(SLOW_CONSUMER) and not self._closing:
            self._closing = True
            if self._metrics is not None:
                self._metrics.ws_client_dropped("slow_consumer")
            log.warning("dropping websocket client: %s", reason)
            self._start_task(self._close(WSCloseCode.POLICY_VIOLATION, reason), self._closers)

    async def _close(self, code: int, reason: str) -> None:
        message = reason.encode("utf-8")[:CLOSE_REASON_BYTES_MAX]
        await self._ws.close(code=code, message=message)

    async def _cleanup(self) -> None:
        self.unsubscribe_all()
        tasks = list(self._calls | self._pumps)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._closers:
            # The close handshake is bounded by the WebSocketResponse's own close timeout.
            await asyncio.gather(*self._closers, return_exceptions=True)

    def _start_task(self, coroutine: Any, group: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        group.add(task)
        task.add_done_callback(group.discard)

    def _gauge_subscriptions(self, delta: int) -> None:
        if self._metrics is not None:
            self._metrics.rpc_ws_subscriptions.inc(delta)


def _event_json(subscription: Subscription, event: NodeEvent) -> dict[str, Any]:
    return {
        "query": subscription.query.text,
        "data": {"type": event.kind, "height": event.height, "value": dict(event.data)},
        "events": dict(event.attributes),
    }
