import pytest

from node.client import RpcClient
from tests.node.rpc.rpc_fake_node import FakeNode, make_tx

pytestmark = pytest.mark.slow


async def test_status_and_broadcast_sync(client: RpcClient, fake_node: FakeNode) -> None:
    status = await client.status()
    assert status["node_info"]["chain_id"] == "test-chain"
    tx = make_tx(1)
    result = await client.broadcast_tx_sync(tx)
    assert result["code"] == 0
    assert result["hash"] == tx.hash().hex()
    fake_node.commit_pending()
    block = await client.block(1)
    assert block["block"]["header"]["height"] == 1
