"""The HTTP transport: JSON-RPC envelope errors, batches, notifications, the GET form, body
and connection limits, CORS. Raw bytes go over real sockets where the client would hide the
case (oversized and chunked bodies)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest

from node.metrics import NodeMetrics
from node.rpc.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_BUSY,
)
from node.rpc.server import RpcServer
from tests.node.rpc.rpc_fake_node import FakeNode, make_tx

pytestmark = pytest.mark.slow


async def _post(server: RpcServer, body: bytes | str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{server.port}/", data=body) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def _get(server: RpcServer, path: str, **headers: str) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}", headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None), response.headers


async def _raw_exchange(server: RpcServer, request: bytes) -> bytes:
    """Send raw bytes, half-close nothing, read the whole reply until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(1 << 16)
    finally:
        writer.close()


def _error_code(document: Any) -> int:
    return int(document["error"]["code"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", PARSE_ERROR),
        (b"", PARSE_ERROR),
        (b"[" * 5000 + b"]" * 5000, PARSE_ERROR),
        (b'{"jsonrpc":"1.0","id":1,"method":"health"}', INVALID_REQUEST),
        (b'{"id":1,"method":"health"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"health","params":3}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"health"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":' + b"9" * 400 + b',"method":"health"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":"' + b"a" * 300 + b'","method":"health"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"health","extra":1}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"no_such"}', METHOD_NOT_FOUND),
        (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":[1]}}', INVALID_PARAMS),
        (b'{"jsonrpc":"2.0","id":1,"method":"block","params":[1,2]}', INVALID_PARAMS),
        (b"[]", INVALID_REQUEST),
        (b"7", INVALID_REQUEST),
    ],
)
async def test_envelope_errors(server: RpcServer, body: bytes, code: int) -> None:
    status, document = await _post(server, body)
    assert status == 200
    assert document["jsonrpc"] == "2.0"
    assert _error_code(document) == code


async def test_error_echoes_a_valid_id(server: RpcServer) -> None:
    _, document = await _post(server, b'{"jsonrpc":"2.0","id":"abc","method":"no_such"}')
    assert document["id"] == "abc"
    assert "no_such" in document["error"]["data"]


async def test_positional_params(server: RpcServer, fake_node: FakeNode) -> None:
    await fake_node.submit_tx(make_tx(1).encode())
    fake_node.commit_pending()
    _, document = await _post(server, b'{"jsonrpc":"2.0","id":1,"method":"block","params":[1]}')
    assert document["result"]["block"]["header"]["height"] == 1


async def test_batch_mixes_results_errors_and_notifications(server: RpcServer) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "health"},
        {"jsonrpc": "2.0", "method": "health"},  # notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "no_such"},
        "not an object",
    ]
    status, document = await _post(server, json.dumps(batch))
    assert status == 200
    assert len(document) == 3
    by_id = {item["id"]: item for item in document if item["id"] is not None}
    assert by_id[1]["result"] == {}
    assert _error_code(by_id[2]) == METHOD_NOT_FOUND
    assert [_error_code(item) for item in document if item["id"] is None] == [INVALID_REQUEST]


async def test_only_notifications_get_no_content(server: RpcServer, fake_node: FakeNode) -> None:
    tx = make_tx(1)
    tx_text = base64.b64encode(tx.encode()).decode()
    notification = {"jsonrpc": "2.0", "method": "broadcast_tx_sync", "params": {"tx": tx_text}}
    status, document = await _post(server, json.dumps([notification]))
    assert status == 204
    assert document is None
    assert tx.hash() in fake_node.mempool  # executed even though nobody is told
    status, _ = await _post(server, json.dumps(notification))
    assert status == 204


async def test_batch_over_the_cap_is_one_error(start_server) -> None:
    server = await start_server(batch_requests_max=3)
    batch = [{"jsonrpc": "2.0", "id": n, "method": "health"} for n in range(4)]
    status, document = await _post(server, json.dumps(batch))
    assert status == 200
    assert _error_code(document) == INVALID_REQUEST
    assert "exceeds the maximum of 3" in document["error"]["data"]
    _, document = await _post(server, json.dumps(batch[:3]))
    assert [item["result"] for item in document] == [{}, {}, {}]


async def test_get_form(server: RpcServer, fake_node: FakeNode) -> None:
    tx = make_tx(1)
    await fake_node.submit_tx(tx.encode())
    fake_node.commit_pending()
    status, document, _ = await _get(server, "/block?height=1")
    assert status == 200
    assert document["id"] == -1
    assert document["result"]["block"]["header"]["height"] == 1
    _, document, _ = await _get(server, '/block?height="1"')
    assert document["result"]["block"]["header"]["height"] == 1
    _, document, _ = await _get(server, f"/tx?hash=0x{tx.hash().hex().upper()}&prove=true")
    assert document["result"]["proof"]["index"] == 0
    _, document, _ = await _get(server, '/query?path="echo"')
    assert document["result"]["found"] is True
    status, document, _ = await _get(server, "/nope")
    assert status == 404
    assert _error_code(document) == METHOD_NOT_FOUND
    status, document, _ = await _get(server, "/block?height=1&height=2")
    assert status == 400
    status, document, _ = await _get(server, "/")
    assert "broadcast_tx_commit" in document["methods"]


async def test_oversized_body_with_content_length_is_refused_unread(start_server) -> None:
    server = await start_server(body_bytes_max=1000)
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    reply = await _raw_exchange(server, head + b"{" * 100)  # 50 MB promised, 100 B sent
    assert reply.startswith(b"HTTP/1.1 413")
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert _error_code(body) == INVALID_REQUEST
    assert "exceeds 1000 bytes" in body["error"]["data"]


async def test_oversized_chunked_body_is_refused(start_server) -> None:
    server = await start_server(body_bytes_max=1000)
    chunk = b"x" * 600
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2))
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply = await _raw_exchange(server, head + chunked)
    assert reply.startswith(b"HTTP/1.1 413")


async def test_body_without_length_over_the_cap(start_server) -> None:
    server = await start_server(body_bytes_max=1000)

    async def body() -> Any:
        for _ in range(3):
            yield b" " * 600

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{server.port}/", data=body()) as response,
    ):
        assert response.status == 413


async def test_body_at_the_cap_is_accepted(start_server) -> None:
    server = await start_server(body_bytes_max=100)
    body = b'{"jsonrpc":"2.0","id":1,"method":"health"}'
    status, document = await _post(server, body + b" " * (100 - len(body)))
    assert status == 200
    assert document["result"] == {}


async def test_connection_cap_refuses_excess(start_server, metrics: NodeMetrics) -> None:
    server = await start_server(connections_open_max=2)
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    try:
        await asyncio.sleep(0.05)
        assert server.open_connections == 2
        reply = await _raw_exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503")
        assert _error_code(json.loads(reply.split(b"\r\n\r\n", 1)[1])) == SERVER_BUSY
        refused = metrics.rpc_http_rejected_total.labels(reason="connections")._value.get()
        assert refused == 1
    finally:
        for _, writer in held:
            writer.close()
    for _ in range(100):
        if server.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    status, _, _ = await _get(server, "/health")
    assert status == 200


async def test_no_cors_header_without_allowlist(server: RpcServer) -> None:
    _, _, headers = await _get(server, "/health", Origin="http://evil.example")
    assert "Access-Control-Allow-Origin" not in headers


async def test_cors_allowlist(start_server) -> None:
    server = await start_server(cors_allowed_origins=("http://dash.example",))
    _, _, headers = await _get(server, "/health", Origin="http://dash.example")
    assert headers["Access-Control-Allow-Origin"] == "http://dash.example"
    _, _, headers = await _get(server, "/health", Origin="http://evil.example")
    assert "Access-Control-Allow-Origin" not in headers


async def test_rpc_metrics_are_counted(server: RpcServer, metrics: NodeMetrics) -> None:
    await _post(server, b'{"jsonrpc":"2.0","id":1,"method":"health"}')
    await _post(server, b'{"jsonrpc":"2.0","id":1,"method":"made_up_name"}')
    ok = metrics.rpc_requests_total.labels(method="health", code="0")._value.get()
    unknown = metrics.rpc_requests_total.labels(method="other", code=str(METHOD_NOT_FOUND))
    assert ok == 1
    assert unknown._value.get() == 1


async def test_trickled_body_times_out(start_server) -> None:
    server = await start_server(body_read_timeout_s=0.1)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    reply = await _raw_exchange(server, head + b"{")  # 99 bytes never come
    assert reply.startswith(b"HTTP/1.1 408")


async def test_trickled_headers_are_cut_off(start_server, metrics: NodeMetrics) -> None:
    server = await start_server(idle_timeout_s=0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read(1024) == b""  # closed by the server
    finally:
        writer.close()
    assert metrics.rpc_http_rejected_total.labels(reason="idle_timeout")._value.get() == 1
    assert server.open_connections == 0


async def test_slow_request_is_not_cut_by_the_idle_deadline(start_server, fake_node) -> None:
    server = await start_server(idle_timeout_s=0.05)
    fake_node.submit_delay_s = 0.2  # the handler runs longer than the idle deadline
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "broadcast_tx_sync",
            "params": {"tx": base64.b64encode(make_tx(1).encode()).decode()},
        }
    )
    status, document = await _post(server, body)
    assert status == 200
    assert document["result"]["code"] == 0


async def test_keep_alive_calls_push_the_idle_deadline_back(
    start_server, metrics: NodeMetrics
) -> None:
    """The deadline runs from the end of the latest call (it is lazy: calls only note the
    time, and the one timer per connection waits again for the rest): calls spaced under
    the timeout keep a connection open for longer than the timeout, idling closes it."""
    server = await start_server(idle_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = b'{"jsonrpc":"2.0","id":1,"method":"health"}'
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    try:
        for _ in range(6):  # 6 x 0.1 s: twice the timeout in all
            writer.write(head + body)
            await writer.drain()
            async with asyncio.timeout(5):
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            assert status.startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.1)
        assert metrics.rpc_http_rejected_total.labels(reason="idle_timeout")._value.get() == 0
        async with asyncio.timeout(5):
            assert await reader.read(1024) == b""  # idle now: closed by the server
    finally:
        writer.close()
    assert metrics.rpc_http_rejected_total.labels(reason="idle_timeout")._value.get() == 1
