"""The setup phase of a mixed workload: state the measured run depends on, committed (and
checked: every setup tx must execute with code 0) before the run starts.

1. Elections: vote.create needs `block height < start_height`, and ballots need
   `height >= start_height`; with no empty blocks the height only moves with txs. So the
   creates are signed now, with start = current height + START_MARGIN, and sent alone; if
   one still commits too late (VOTE_BAD_WINDOW), they are signed again a little higher
   (bounded attempts).
2. Stages in order (campaigns, assets, seed awards; then the campaigns' seed donations),
   each in chunks of at most CHUNK_TXS sent to the first node, every chunk committed before
   the next (so no agency ever nears its mempool quota).
3. If the height is still below the elections' start, filler anchors, one block each,
   until it is not (bounded by the fillers signed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bench import outcomes
from bench.cluster import Cluster, NodeHandle
from bench.ledger import Ledger
from bench.loadgen import CommitWaiters, RunClock, follow_blocks
from bench.mixload import MixLoad
from bench.txgen import SignedTx
from node.client import RpcClient, RpcError, RpcTransportError

log = logging.getLogger(__name__)

CHUNK_TXS = 500
STAGE_TIMEOUT_S = 120.0
STREAM_OPEN_TIMEOUT_S = 10.0
POLL_S = 0.05
START_MARGIN = 3
ELECTION_ATTEMPTS = 5
VOTE_BAD_WINDOW = 402


class SetupError(Exception):
    """The setup could not be committed; the message says which tx and why."""


async def run_setup(cluster: Cluster, load: MixLoad) -> dict[str, Any]:
    """Commit the setup; what it did, for results.json (`setup`)."""
    node = cluster.nodes[0]
    started = asyncio.get_running_loop().time()
    async with RpcClient(node.rpc_url, timeout_s=30.0) as client:
        start_height = await _create_elections(node, client, load) if load.plan.election_ids else 0
        committed = 0
        for stage in load.setup:
            for first in range(0, len(stage), CHUNK_TXS):
                await commit_all(node, client, stage[first : first + CHUNK_TXS])
            committed += len(stage)
        fillers = await _reach_height(node, client, start_height, load.fillers)
        height = await _height(client)
    return {
        "txs": committed,
        "elections": len(load.plan.election_ids),
        "elections_start_height": start_height or None,
        "fillers": fillers,
        "height_after": height,
        "seconds": asyncio.get_running_loop().time() - started,
    }


async def _height(client: RpcClient) -> int:
    status = await client.status()
    return int(status["sync_info"]["latest_block_height"])


async def _create_elections(node: NodeHandle, client: RpcClient, load: MixLoad) -> int:
    """The elections' start height, once all of them committed with code 0."""
    for attempt in range(ELECTION_ATTEMPTS):
        start = await _height(client) + START_MARGIN * (attempt + 1)
        results = await commit_all(node, client, load.sign_elections(start), allow=VOTE_BAD_WINDOW)
        if all(code == 0 for code in results):
            return start
        log.info("elections committed too late for start %d; again higher", start)
    raise SetupError(f"vote.create: window start still too low after {ELECTION_ATTEMPTS} tries")


async def _reach_height(
    node: NodeHandle, client: RpcClient, height: int, fillers: Sequence[SignedTx]
) -> int:
    """Commit filler anchors one at a time until the chain is at `height`; how many."""
    used = 0
    while await _height(client) < height:
        if used >= len(fillers):
            raise SetupError(f"height still below {height} after {used} filler txs")
        await commit_all(node, client, fillers[used : used + 1])
        used += 1
    return used


async def commit_all(
    node: NodeHandle, client: RpcClient, txs: Sequence[SignedTx], *, allow: int | None = None
) -> list[int]:
    """Send `txs` in one broadcast_txs call and wait until all committed; their execution
    codes. Any refusal (mempool or execution, except code `allow`) is a SetupError."""
    ledger = Ledger([tx.hash_hex for tx in txs])
    ready = asyncio.Event()
    follower = asyncio.create_task(
        follow_blocks(node, client, ledger, RunClock(), CommitWaiters(), ready)
    )
    try:
        async with asyncio.timeout(STREAM_OPEN_TIMEOUT_S):
            await ready.wait()
        if follower.done():
            raise SetupError("setup: the NewBlock event stream did not open")
        await _broadcast(client, txs, ledger)
        await _wait_committed(ledger, follower)
    except TimeoutError:
        raise SetupError(f"setup: {ledger.pending} txs not committed in time") from None
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    found = await outcomes.check(client, ledger, [tx.kind for tx in txs])
    if found.checked_txs != len(txs):
        raise SetupError(f"setup: results of {len(txs) - found.checked_txs} txs unreadable")
    codes = [0 if found.succeeded.get(i) else -1 for i in range(len(txs))]
    refused = {key: text for key, text in found.samples.items() if not key.endswith(f":{allow}")}
    if refused:
        raise SetupError(f"setup tx refused at execution: {refused}")
    return codes


async def _broadcast(client: RpcClient, txs: Sequence[SignedTx], ledger: Ledger) -> None:
    for index in range(len(txs)):
        ledger.sent_at(index, 0.0)
    try:
        answer = await client.call("broadcast_txs", {"txs": [tx.text for tx in txs]})
    except (RpcError, RpcTransportError) as error:
        raise SetupError(f"setup: broadcast_txs failed: {error}") from None
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(txs):
        raise SetupError("setup: broadcast_txs answer does not match the batch")
    for tx, result in zip(txs, results, strict=True):
        if not (isinstance(result, dict) and result.get("code") == 0):
            raise SetupError(f"setup {tx.kind} refused by the mempool: {str(result)[:200]}")


async def _wait_committed(ledger: Ledger, follower: asyncio.Task[None]) -> None:
    async with asyncio.timeout(STAGE_TIMEOUT_S):
        while ledger.pending:
            if follower.done():
                raise SetupError("setup: the NewBlock event stream ended")
            await asyncio.sleep(POLL_S)
