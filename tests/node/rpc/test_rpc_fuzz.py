"""Property: whatever body a client POSTs, the server answers with a valid JSON-RPC response
(object or batch), 204 for notifications only, or a 4xx; never a 500 and never a hang.

The server runs on its own event loop in a thread for the whole module, so that hypothesis
can drive it from a plain synchronous test; every request has a 5 s socket timeout, which
turns a hang into a failure."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.rpc.config import RpcConfig
from node.rpc.names import METHOD_NAMES
from node.rpc.server import RpcServer
from tests.node.rpc.rpc_fake_node import FakeNode, make_tx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    node = FakeNode()
    config = RpcConfig(
        port=0, body_bytes_max=64 * 1024, commit_timeout_s=0.2, batch_requests_max=20
    )
    server = RpcServer(node, config=config)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        tx = make_tx(1)
        loop.run_until_complete(node.submit_tx(tx.encode()))
        node.commit_pending()
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield server.port
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _is_response(item: Any) -> bool:
    if not isinstance(item, dict) or item.get("jsonrpc") != "2.0" or "id" not in item:
        return False
    if ("result" in item) == ("error" in item):
        return False
    if "error" in item:
        error = item["error"]
        return isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    return True


def _check(status: int, payload: bytes) -> None:
    assert status != 500
    if 400 <= status < 500:
        return
    if status == 204:
        assert payload == b""
        return
    assert status == 200, status
    document = json.loads(payload)
    if isinstance(document, list):
        assert document, "an empty batch answer must be 204, not []"
        assert all(_is_response(item) for item in document), document
    else:
        assert _is_response(document), document


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
        "method": st.sampled_from([*METHOD_NAMES, "x"]),
    },
    optional={
        "id": st.none() | st.integers() | st.text(max_size=10),
        "params": st.dictionaries(
            st.sampled_from(
                [
                    "height",
                    "hash",
                    "tx",
                    "txs",
                    "query",
                    "path",
                    "params",
                    "limit",
                    "prove",
                    "page",
                    "minHeight",
                ]
            ),
            json_values,
            max_size=3,
        )
        | st.lists(json_values, max_size=3),
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    requests.map(lambda request: json.dumps(request).encode()),
    st.lists(requests | json_values, max_size=25).map(lambda batch: json.dumps(batch).encode()),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_any_body_gets_a_valid_answer(server_port: int, body: bytes) -> None:
    status, payload = _post(server_port, body)
    _check(status, payload)
