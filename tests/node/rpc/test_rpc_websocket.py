"""WebSocket: JSON-RPC calls, subscribe / unsubscribe, event delivery, the subscription
limits, and a slow consumer being dropped (with its reason) and counted."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from node.api import NodeEvent
from node.client import RpcClient, SubscriptionDropped
from node.metrics import NodeMetrics
from node.rpc.jsonrpc import INVALID_PARAMS, PARSE_ERROR, SUBSCRIPTION_LIMIT
from node.rpc.server import RpcServer
from tests.node.rpc.rpc_fake_node import FakeNode, make_tx

pytestmark = pytest.mark.slow


class Socket:
    """A bare WebSocket with a call() helper that skips event messages."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[Any] = []
        self._ids = 0

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._ids += 1
        request = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params or {}}
        await self.ws.send_str(json.dumps(request))
        while True:
            document = await self.receive()
            if document.get("id") == self._ids:
                return document
            self.events.append(document)

    async def receive(self) -> Any:
        async with asyncio.timeout(5):
            message = await self.ws.receive()
        assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.extra)
        return json.loads(message.data)

    async def event(self) -> Any:
        if self.events:
            return self.events.pop(0)
        return await self.receive()


@pytest.fixture
async def sockets(server: RpcServer) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:
        opened: list[Socket] = []

        async def connect() -> Socket:
            ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/websocket")
            opened.append(Socket(ws))
            return opened[-1]

        yield connect
        for socket in opened:
            await socket.ws.close()


async def test_calls_over_websocket(sockets: Any, fake_node: FakeNode) -> None:
    socket = await sockets()
    answer = await socket.call("status")
    assert answer["result"]["node_info"]["chain_id"] == "test-chain"
    await socket.ws.send_str("{broken")
    assert (await socket.receive())["error"]["code"] == PARSE_ERROR
    await socket.ws.send_str(json.dumps([{"jsonrpc": "2.0", "id": 9, "method": "health"}]))
    assert (await socket.receive())[0]["result"] == {}


async def test_new_block_and_tx_events(sockets: Any, fake_node: FakeNode) -> None:
    socket = await sockets()
    assert (await socket.call("subscribe", {"query": "tm.event='NewBlock'"}))["result"] == {}
    query = "tm.event='Tx' AND tx.kind='notary.anchor'"
    assert (await socket.call("subscribe", {"query": query}))["result"] == {}
    tx = make_tx(1)
    await fake_node.submit_tx(tx.encode())
    fake_node.commit_pending()
    received = [await socket.event(), await socket.event()]
    kinds = sorted(event["result"]["data"]["type"] for event in received)
    assert kinds == ["NewBlock", "Tx"]
    tx_event = next(e for e in received if e["result"]["data"]["type"] == "Tx")
    assert tx_event["id"] == "2#event"
    assert tx_event["result"]["query"] == "tm.event='Tx' AND tx.kind='notary.anchor'"
    assert tx_event["result"]["data"]["value"]["hash"] == tx.hash().hex()
    assert tx_event["result"]["events"]["notary.issuer"] == "seoul-city"


async def test_attribute_filter_and_unsubscribe(sockets: Any, fake_node: FakeNode) -> None:
    socket = await sockets()
    query = "tm.event='Tx' AND tx.kind='other.kind'"
    await socket.call("subscribe", {"query": query})
    await socket.call("subscribe", {"query": "tm.event='NewBlock'"})
    await fake_node.submit_tx(make_tx(1).encode())
    fake_node.commit_pending()
    only = await socket.event()
    assert only["result"]["data"]["type"] == "NewBlock"  # the tx did not match other.kind
    assert (await socket.call("unsubscribe", {"query": "tm.event = 'NewBlock'"}))["result"] == {}
    missing = await socket.call("unsubscribe", {"query": "tm.event='NewBlock'"})
    assert missing["error"]["code"] == INVALID_PARAMS
    assert (await socket.call("unsubscribe_all"))["result"] == {}
    assert len(fake_node.bus) == 0
    fake_node.commit_pending()
    assert (await socket.call("health"))["result"] == {}
    assert socket.events == []


@pytest.mark.parametrize(
    "query",
    [
        "tm.event='Block'",
        "tm.event>'Tx'",
        "tx.kind='x'",
        "tm.event='Tx' AND tm.event='NewBlock'",
        "tm.event='Tx' OR x='y'",
        "tm.event='Tx' AND " * 9 + "a='b'",
        "",
    ],
)
async def test_bad_subscription_queries(sockets: Any, query: str) -> None:
    socket = await sockets()
    answer = await socket.call("subscribe", {"query": query})
    assert answer["error"]["code"] == INVALID_PARAMS


async def test_subscriptions_per_client_cap(start_server, fake_node: FakeNode) -> None:
    server = await start_server(ws_subscriptions_per_client_max=2)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/websocket")
        socket = Socket(ws)
        await socket.call("subscribe", {"query": "tm.event='NewBlock'"})
        await socket.call("subscribe", {"query": "tm.event='Tx'"})
        third = await socket.call("subscribe", {"query": "tm.event='Tx' AND a='b'"})
        assert third["error"]["code"] == SUBSCRIPTION_LIMIT
        await ws.close()


async def test_subscribed_clients_cap(start_server, fake_node: FakeNode) -> None:
    server = await start_server(ws_clients_max=1)
    async with aiohttp.ClientSession() as session:
        url = f"ws://127.0.0.1:{server.port}/websocket"
        first = Socket(await session.ws_connect(url))
        second = Socket(await session.ws_connect(url))
        assert "result" in await first.call("subscribe", {"query": "tm.event='NewBlock'"})
        refused = await second.call("subscribe", {"query": "tm.event='NewBlock'"})
        assert refused["error"]["code"] == SUBSCRIPTION_LIMIT
        assert "result" in await second.call("status")  # plain calls still work
        await first.ws.close()
        for _ in range(100):
            answer = await second.call("subscribe", {"query": "tm.event='NewBlock'"})
            if "result" in answer:
                break
            await asyncio.sleep(0.01)
        assert "result" in answer
        await second.ws.close()


async def test_slow_consumer_is_dropped_and_counted(
    start_server, fake_node: FakeNode, metrics: NodeMetrics
) -> None:
    server = await start_server(ws_event_queue_max=4)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/websocket")
        socket = Socket(ws)
        await socket.call("subscribe", {"query": "tm.event='NewBlock'"})
        # Publishing is synchronous: 50 events arrive before the pump can send one.
        for height in range(50):
            fake_node.bus.publish(NodeEvent(kind="NewBlock", height=height))
        close = None
        async with asyncio.timeout(5):
            while close is None:
                message = await ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    close = message
        assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        assert "slow consumer" in str(close.extra)
    dropped = metrics.rpc_ws_dropped_clients_total.labels(reason="slow_consumer")._value.get()
    assert dropped == 1
    assert fake_node.bus.slow_subscriptions_closed_total == 1
    assert len(fake_node.bus) == 0


async def test_client_event_stream(client: RpcClient, fake_node: FakeNode) -> None:
    async with client.subscribe("tm.event='NewBlock'") as events:
        fake_node.commit_pending()
        fake_node.commit_pending()
        heights = [(await anext(events))["data"]["height"] for _ in range(2)]
    assert heights == [1, 2]


async def test_client_event_stream_reports_drop(start_server, fake_node: FakeNode) -> None:
    server = await start_server(ws_event_queue_max=2)
    async with RpcClient(f"http://127.0.0.1:{server.port}") as client:
        async with client.subscribe("tm.event='NewBlock'") as events:
            for height in range(20):
                fake_node.bus.publish(NodeEvent(kind="NewBlock", height=height))

            async def drain() -> None:
                async with asyncio.timeout(5):
                    async for _ in events:
                        pass

            with pytest.raises(SubscriptionDropped) as dropped:
                await drain()
        assert "slow consumer" in dropped.value.reason


async def test_client_event_stream_reconnects(start_server, fake_node: FakeNode) -> None:
    server = await start_server(ws_event_queue_max=2)
    client = RpcClient(f"http://127.0.0.1:{server.port}")
    async with client, client.subscribe("tm.event='NewBlock'", reconnect=True) as events:
        for height in range(20):
            fake_node.bus.publish(NodeEvent(kind="NewBlock", height=height))

        # Dropped as slow, the stream reconnects and resubscribes; new events flow again.
        async def publish_for_a_while() -> None:
            for _ in range(100):
                fake_node.bus.publish(NodeEvent(kind="NewBlock", height=1000))
                await asyncio.sleep(0.05)

        publisher = asyncio.ensure_future(publish_for_a_while())
        try:
            async with asyncio.timeout(5):
                while (await anext(events))["data"]["height"] != 1000:
                    pass
        finally:
            publisher.cancel()


async def test_websocket_message_size_cap(start_server) -> None:
    server = await start_server(ws_message_bytes_max=1000)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/websocket")
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x" * 2000}))
        async with asyncio.timeout(5):
            message = await ws.receive()
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_inflight_cap_applies_backpressure(start_server, fake_node: FakeNode) -> None:
    """With 1 call slot, a slow call holds the socket: later calls wait, then all complete."""
    server = await start_server(ws_inflight_requests_max=1)
    fake_node.submit_delay_s = 0.1
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/websocket")
        tx_text = base64.b64encode(make_tx(1).encode()).decode()
        slow = {"jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_sync", "params": {"tx": tx_text}}
        await ws.send_str(json.dumps(slow))
        for request_id in (2, 3):
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "health"}))
        socket = Socket(ws)
        answers = [await socket.receive() for _ in range(3)]
        assert [answer["id"] for answer in answers] == [1, 2, 3]  # health had to wait
        assert answers[0]["result"]["code"] == 0
        await ws.close()
