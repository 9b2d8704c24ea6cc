"""Every RPC method through a real server on 127.0.0.1 and the real client, against the
in-memory FakeNode. Proof and seal answers are checked cryptographically, not by shape only."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest

from node.client import RpcClient, RpcError
from node.rpc.jsonrpc import (
    COMMIT_TIMEOUT,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    NOT_FOUND,
    NOT_SUPPORTED,
    REQUEST_TIMEOUT,
    SERVER_BUSY,
    WEBSOCKET_ONLY,
)
from node.rpc.server import RpcServer
from protocol.block import decode_header
from protocol.proof import ProofError, verify_tx_proof
from protocol.proof import TxProof as ProtocolTxProof
from protocol.proof_json import proof_from_json
from protocol.seal import decode_seal
from tests.node.rpc.rpc_fake_node import FAILING_KIND, VALIDATORS, FakeNode, make_tx

pytestmark = pytest.mark.slow


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (bounded: 2 s) for something the server does in the background."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in 2 s")


async def _chain(fake_node: FakeNode, blocks: int, txs_per_block: int = 2) -> list[bytes]:
    hashes = []
    nonce = 0
    for _ in range(blocks):
        for _ in range(txs_per_block):
            nonce += 1
            tx = make_tx(nonce)
            assert (await fake_node.submit_tx(tx.encode())).code == 0
            hashes.append(tx.hash())
        fake_node.commit_pending()
    return hashes


async def test_info_methods(client: RpcClient, fake_node: FakeNode) -> None:
    assert await client.health() == {}
    assert (await client.call("genesis"))["genesis"]["chain_id"] == "test-chain"
    validators = await client.call("validators")
    assert validators["count"] == 4
    assert validators["validators"][1]["public_key"] == VALIDATORS.public_keys[1].hex()
    assert (await client.call("net_info"))["n_peers"] == 3


async def test_health_reports_unhealthy_node(client: RpcClient, fake_node: FakeNode) -> None:
    fake_node.unhealthy = "no quorum for 30 s"
    with pytest.raises(RpcError) as error:
        await client.health()
    assert error.value.data == "no quorum for 30 s"


async def test_mempool_methods(client: RpcClient) -> None:
    txs = [make_tx(n) for n in range(1, 4)]
    for tx in txs:
        await client.broadcast_tx_sync(tx)
    counts = await client.call("num_unconfirmed_txs")
    assert counts["n_txs"] == 3
    assert counts["total_bytes"] == sum(len(tx.encode()) for tx in txs)
    listing = await client.call("unconfirmed_txs", {"limit": 2})
    assert listing["n_txs"] == 2
    assert listing["total"] == 3
    assert base64.b64decode(listing["txs"][0]) == txs[0].encode()
    with pytest.raises(RpcError) as error:
        await client.call("unconfirmed_txs", {"limit": 101})
    assert error.value.code == INVALID_PARAMS


async def test_block_commit_and_seal_verify(client: RpcClient, fake_node: FakeNode) -> None:
    hashes = await _chain(fake_node, 3)
    latest = await client.block()
    assert latest["block"]["header"]["height"] == 3
    block = await client.block(2)
    header = decode_header(bytes.fromhex(block["block"]["header"]["hex"]))
    assert header.height == 2
    assert block["block_id"]["hash"] == header.hash().hex()
    txs = [base64.b64decode(text) for text in block["block"]["data"]["txs"]]
    assert [fake_node.committed[h].tx.encode() for h in hashes[2:4]] == txs
    seal = decode_seal(bytes.fromhex(block["seal"]["hex"]))
    assert (
        seal.invalid_for(VALIDATORS, chain_id="test-chain", height=2, block_hash=header.hash())
        is None
    )
    commit = await client.commit(2)
    assert commit["signed_header"]["commit"]["hex"] == block["seal"]["hex"]
    assert commit["signed_header"]["header"]["hash"] == header.hash().hex()
    by_hash = await client.call("block_by_hash", {"hash": header.hash().hex().upper()})
    assert by_hash["block"]["header"]["height"] == 2


async def test_block_errors(client: RpcClient, fake_node: FakeNode) -> None:
    with pytest.raises(RpcError) as error:
        await client.block()
    assert error.value.code == NOT_FOUND
    await _chain(fake_node, 1)
    for bad, code in (
        (0, INVALID_PARAMS),
        (2, NOT_FOUND),
        ("x", INVALID_PARAMS),
        (True, INVALID_PARAMS),
    ):
        with pytest.raises(RpcError) as error:
            await client.call("block", {"height": bad})
        assert error.value.code == code, bad
    assert (await client.call("block", {"height": "1"}))["block"]["header"]["height"] == 1
    with pytest.raises(RpcError) as error:
        await client.call("block_by_hash", {"hash": "00" * 32})
    assert error.value.code == NOT_FOUND
    with pytest.raises(RpcError) as error:
        await client.call("block_by_hash", {"hash": "zz"})
    assert error.value.code == INVALID_PARAMS


async def test_blockchain_is_capped_and_descending(client: RpcClient, fake_node: FakeNode) -> None:
    await _chain(fake_node, 25, txs_per_block=0)
    chain = await client.call("blockchain")
    heights = [meta["header"]["height"] for meta in chain["block_metas"]]
    assert chain["last_height"] == 25
    assert heights == list(range(25, 5, -1))
    window = await client.call("blockchain", {"minHeight": 3, "maxHeight": 5})
    assert [meta["header"]["height"] for meta in window["block_metas"]] == [5, 4, 3]
    with pytest.raises(RpcError) as error:
        await client.call("blockchain", {"minHeight": 5, "maxHeight": 3})
    assert error.value.code == INVALID_PARAMS


async def test_block_results(client: RpcClient, fake_node: FakeNode) -> None:
    await fake_node.submit_tx(make_tx(1, kind=FAILING_KIND).encode())
    await fake_node.submit_tx(make_tx(2).encode())
    fake_node.commit_pending()
    results = await client.call("block_results", {"height": 1})
    assert [item["code"] for item in results["txs_results"]] == [7, 0]
    assert results["app_hash"] == fake_node.app_hash(1).hex()  # type: ignore[union-attr]


async def test_tx_with_proof_verifies(client: RpcClient, fake_node: FakeNode) -> None:
    hashes = await _chain(fake_node, 2, txs_per_block=3)
    target = hashes[4]
    answer = await client.tx(target, prove=True)
    assert answer["height"] == 2
    assert answer["index"] == 1
    proof = proof_from_json(answer["proof"])
    assert isinstance(proof, ProtocolTxProof)
    verified = verify_tx_proof(proof, VALIDATORS, "test-chain")
    assert verified.tx_hash == target
    assert verified.height == 2
    bare = await client.call("tx_proof", {"hash": target.hex()})
    assert bare == answer["proof"]
    forged = proof_from_json(dict(bare, index=0))
    assert isinstance(forged, ProtocolTxProof)
    with pytest.raises(ProofError):
        verify_tx_proof(forged, VALIDATORS, "test-chain")
    plain = await client.tx("0x" + target.hex().upper())
    assert "proof" not in plain
    with pytest.raises(RpcError) as error:
        await client.tx(b"\x01" * 32)
    assert error.value.code == NOT_FOUND


async def test_tx_search_by_kind_and_height(client: RpcClient, fake_node: FakeNode) -> None:
    await fake_node.submit_tx(make_tx(1, kind=FAILING_KIND).encode())
    await fake_node.submit_tx(make_tx(2).encode())
    fake_node.commit_pending()
    await fake_node.submit_tx(make_tx(3).encode())
    fake_node.commit_pending()
    found = await client.call("tx_search", {"query": "tx.kind='notary.anchor'"})
    assert found["total_count"] == 2
    assert [tx["height"] for tx in found["txs"]] == [1, 2]
    ranged = await client.call("tx_search", {"query": "tx.height>1", "order_by": "desc"})
    assert [tx["height"] for tx in ranged["txs"]] == [2]
    paged = await client.call("tx_search", {"query": "tx.height>=1", "per_page": 1, "page": 2})
    assert paged["total_count"] == 3
    assert len(paged["txs"]) == 1
    failed = await client.call("tx_search", {"query": "tx.code=7", "prove": True})
    assert failed["total_count"] == 1
    assert "proof" in failed["txs"][0]
    with pytest.raises(RpcError) as error:
        await client.call("tx_search", {"query": "notary.issuer='x'"})
    assert error.value.code == NOT_SUPPORTED
    with pytest.raises(RpcError) as error:
        await client.call("tx_search", {"query": "tx.kind=="})
    assert error.value.code == INVALID_PARAMS


async def test_query_maps_errors(client: RpcClient) -> None:
    answer = await client.query("echo", {"id": "cert-1"})
    assert answer["found"] is True
    assert answer["value"] == {"id": "cert-1"}
    with pytest.raises(RpcError) as error:
        await client.query("nope")
    assert error.value.code == INVALID_PARAMS
    assert "unknown path" in str(error.value.data)
    with pytest.raises(RpcError) as error:
        await client.query("boom")
    assert error.value.code == INTERNAL_ERROR
    assert error.value.data is None
    assert "passwd" not in str(error.value)


async def test_broadcast_async_runs_in_background(client: RpcClient, fake_node: FakeNode) -> None:
    tx = make_tx(1)
    answer = await client.broadcast_tx_async(tx)
    assert answer["hash"] == tx.hash().hex()
    await _until(lambda: tx.hash() in fake_node.mempool)
    with pytest.raises(RpcError) as error:
        await client.broadcast_tx_async(b"\x01garbage")
    assert error.value.code == INVALID_PARAMS


async def test_broadcast_sync_reports_refusal(client: RpcClient, fake_node: FakeNode) -> None:
    fake_node.mempool_max = 0
    answer = await client.broadcast_tx_sync(make_tx(1))
    assert answer["code"] == 1
    assert answer["log"] == "mempool full"
    assert answer["codespace"] == "mempool"


async def test_broadcast_commit_waits_for_the_block(client: RpcClient, fake_node: FakeNode) -> None:
    tx = make_tx(1)
    call = asyncio.ensure_future(client.broadcast_tx_commit(tx))
    await _until(lambda: tx.hash() in fake_node.mempool)
    assert not call.done()
    fake_node.commit_pending()
    answer = await call
    assert answer["height"] == 1
    assert answer["check_tx"]["code"] == 0
    assert answer["tx_result"]["code"] == 0
    assert answer["hash"] == tx.hash().hex()


async def test_broadcast_commit_times_out(start_server, fake_node: FakeNode) -> None:
    server: RpcServer = await start_server(commit_timeout_s=0.05)
    async with RpcClient(f"http://127.0.0.1:{server.port}", timeout_s=5.0) as client:
        with pytest.raises(RpcError) as error:
            await client.broadcast_tx_commit(make_tx(1))
        assert error.value.code == COMMIT_TIMEOUT
        assert make_tx(1).hash().hex() in str(error.value.data)
        fake_node.mempool_max = 0
        refused = await client.broadcast_tx_commit(make_tx(2))
        assert refused["check_tx"]["code"] == 1
        assert refused["tx_result"] is None


async def test_broadcast_commit_waiter_cap(start_server, fake_node: FakeNode) -> None:
    server: RpcServer = await start_server(commit_waiters_max=2, commit_timeout_s=5.0)
    async with RpcClient(f"http://127.0.0.1:{server.port}", timeout_s=5.0) as client:
        waiting = [asyncio.ensure_future(client.broadcast_tx_commit(make_tx(n))) for n in (1, 2)]
        await _until(lambda: len(fake_node.mempool) == 2)
        with pytest.raises(RpcError) as error:
            await client.broadcast_tx_commit(make_tx(3))
        assert error.value.code == SERVER_BUSY
        fake_node.commit_pending()
        assert [answer["height"] for answer in await asyncio.gather(*waiting)] == [1, 1]


async def test_broadcast_txs_per_tx_results(client: RpcClient, fake_node: FakeNode) -> None:
    good = [make_tx(n) for n in (1, 2)]
    answers = await client.broadcast_txs([good[0], b"\x09broken", good[1]])
    assert [answer["code"] for answer in answers] == [0, 1, 0]
    assert answers[1]["codespace"] == "rpc"
    assert answers[2]["hash"] == good[1].hash().hex()
    assert fake_node.submitted == [tx.encode() for tx in good]


async def test_broadcast_txs_count_cap(start_server) -> None:
    server: RpcServer = await start_server(broadcast_txs_max=2)
    async with RpcClient(f"http://127.0.0.1:{server.port}") as client:
        with pytest.raises(RpcError) as error:
            await client.broadcast_txs([make_tx(n) for n in range(3)])
        assert error.value.code == INVALID_PARAMS


async def test_subscribe_over_http_is_refused(client: RpcClient) -> None:
    with pytest.raises(RpcError) as error:
        await client.call("subscribe", {"query": "tm.event='NewBlock'"})
    assert error.value.code == WEBSOCKET_ONLY


async def test_positional_params_and_unknown_params(client: RpcClient, fake_node: FakeNode) -> None:
    await _chain(fake_node, 1)
    answer = await client.batch([("block", None)])
    assert answer[0]["block"]["header"]["height"] == 1
    with pytest.raises(RpcError) as error:
        await client.call("block", {"heigth": 1})
    assert error.value.code == INVALID_PARAMS
    assert "heigth" in str(error.value.data)


async def test_async_submissions_are_bounded(start_server, fake_node: FakeNode) -> None:
    server: RpcServer = await start_server(async_submissions_max=2)
    fake_node.submit_delay_s = 0.2
    async with RpcClient(f"http://127.0.0.1:{server.port}") as client:
        await client.broadcast_tx_async(make_tx(1))
        await client.broadcast_tx_async(make_tx(2))
        with pytest.raises(RpcError) as error:
            await client.broadcast_tx_async(make_tx(3))
        assert error.value.code == SERVER_BUSY
        await _until(lambda: len(fake_node.mempool) == 2)
        await client.broadcast_tx_async(make_tx(3))  # room again


async def test_expensive_call_times_out(start_server, fake_node: FakeNode) -> None:
    server: RpcServer = await start_server(request_timeout_s=0.05)
    fake_node.submit_delay_s = 1.0
    async with RpcClient(f"http://127.0.0.1:{server.port}") as client:
        with pytest.raises(RpcError) as error:
            await client.broadcast_tx_sync(make_tx(1))
        assert error.value.code == REQUEST_TIMEOUT
