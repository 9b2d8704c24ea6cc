"""Fixtures: a FakeNode, an RpcServer on 127.0.0.1 port 0 in front of it, and a real client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from node.client import RpcClient
from node.metrics import NodeMetrics
from node.rpc.config import RpcConfig
from node.rpc.server import RpcServer
from tests.node.rpc.rpc_fake_node import FakeNode

StartServer = Callable[..., Awaitable[RpcServer]]


@pytest.fixture
def fake_node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def metrics() -> NodeMetrics:
    return NodeMetrics(CollectorRegistry(), process=False)


@pytest.fixture
async def start_server(fake_node: FakeNode, metrics: NodeMetrics) -> AsyncIterator[StartServer]:
    servers: list[RpcServer] = []

    async def start(**overrides: object) -> RpcServer:
        config = RpcConfig(port=0, **overrides)  # type: ignore[arg-type]
        server = RpcServer(fake_node, config=config, metrics=metrics)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(start_server: StartServer) -> RpcServer:
    return await start_server()


@pytest.fixture
async def client(server: RpcServer) -> AsyncIterator[RpcClient]:
    async with RpcClient(f"http://127.0.0.1:{server.port}", timeout_s=5.0) as rpc:
        yield rpc
