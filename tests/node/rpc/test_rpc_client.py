"""node.client.RpcClient against the real server: batches, typed errors, polling helpers."""

from __future__ import annotations

import asyncio
import socket

import pytest

from node.client import RpcClient, RpcError, RpcTransportError
from node.rpc.jsonrpc import INVALID_REQUEST, METHOD_NOT_FOUND
from node.rpc.server import RpcServer
from tests.node.rpc.rpc_fake_node import FakeNode, make_tx

pytestmark = pytest.mark.slow


async def test_batch_returns_results_and_errors_in_order(client: RpcClient) -> None:
    results = await client.batch([("health", None), ("nope", None), ("num_unconfirmed_txs", None)])
    assert results[0] == {}
    assert isinstance(results[1], RpcError)
    assert results[1].code == METHOD_NOT_FOUND
    assert results[2]["n_txs"] == 0


async def test_batch_refused_as_a_whole_raises(start_server) -> None:
    server: RpcServer = await start_server(batch_requests_max=2)
    async with RpcClient(f"http://127.0.0.1:{server.port}") as client:
        with pytest.raises(RpcError) as error:
            await client.batch([("health", None)] * 3)
        assert error.value.code == INVALID_REQUEST


async def test_transport_errors_are_typed(start_server) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    async with RpcClient(f"http://127.0.0.1:{free_port}", timeout_s=2) as client:
        with pytest.raises(RpcTransportError):
            await client.status()
    server: RpcServer = await start_server(body_bytes_max=200)
    async with RpcClient(f"http://127.0.0.1:{server.port}") as client:
        with pytest.raises(RpcError) as error:  # 413 carries a JSON-RPC error body
            await client.broadcast_tx_sync(make_tx(1, body=b"x" * 500))
        assert error.value.code == INVALID_REQUEST


async def test_broadcast_accepts_tx_or_bytes(client: RpcClient, fake_node: FakeNode) -> None:
    first, second = make_tx(1), make_tx(2)
    assert (await client.broadcast_tx_sync(first))["hash"] == first.hash().hex()
    assert (await client.broadcast_tx_sync(second.encode()))["hash"] == second.hash().hex()
    assert set(fake_node.mempool) == {first.hash(), second.hash()}


async def test_wait_for_tx_polls_until_committed(client: RpcClient, fake_node: FakeNode) -> None:
    tx = make_tx(1)
    await client.broadcast_tx_sync(tx)
    waiting = asyncio.ensure_future(client.wait_for_tx(tx.hash(), poll_interval_s=0.01))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    fake_node.commit_pending()
    assert (await waiting)["height"] == 1
    with pytest.raises(RpcTransportError, match="not committed"):
        await client.wait_for_tx(make_tx(9).hash(), timeout_s=0.05, poll_interval_s=0.01)


async def test_commit_and_query_helpers(client: RpcClient, fake_node: FakeNode) -> None:
    fake_node.commit_pending()
    assert (await client.commit())["signed_header"]["header"]["height"] == 1
    assert (await client.query("echo", {"k": "v"}))["value"] == {"k": "v"}
