"""tx_search without an index: a bounded scan of a height range.

The NodeApi has no tx index yet (docs/RPC.md says which index would lift this), so the search
reads blocks and their results over a height range of at most tx_search_scan_heights_max
heights, and matches the fields every tx has: tx.height (= < <= > >=), tx.kind, tx.signer
(hex) and tx.code. Event-attribute conditions need the index and are refused with
NOT_SUPPORTED. The scan yields to the event loop after every block, so a large scan delays
other clients by at most one block's work at a time, and the dispatcher's request timeout
bounds it overall.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from node.api import CommittedTx, NodeApi
from node.events import Condition, QueryParseError, parse_query
from node.rpc.config import RpcConfig
from node.rpc.encode import committed_tx_json, tx_proof_json
from node.rpc.jsonrpc import NOT_SUPPORTED, RpcFault, invalid_params
from node.rpc.params import Params
from protocol.results import TxResult
from protocol.tx import Tx

SEARCH_QUERY_CHARS_MAX = 512
SCANNABLE_KEYS = ("tx.height", "tx.kind", "tx.signer", "tx.code")


@dataclass(frozen=True, slots=True)
class _Page:
    number: int
    size: int
    descending: bool


def _read_page(params: Params, config: RpcConfig) -> _Page:
    number = params.optional_int("page", default=1, minimum=1, maximum=1_000_000)
    size = params.optional_int(
        "per_page", default=30, minimum=1, maximum=config.tx_search_per_page_max
    )
    order = params.optional_str("order_by", chars_max=8, default="asc")
    if order not in ("asc", "desc"):
        raise invalid_params('order_by must be "asc" or "desc"')
    assert number is not None
    assert size is not None
    return _Page(number=number, size=size, descending=order == "desc")


def _height_range(conditions: tuple[Condition, ...], latest: int) -> tuple[int, int]:
    low, high = 1, latest
    for condition in conditions:
        if condition.key != "tx.height":
            continue
        if not isinstance(condition.value, int):
            raise invalid_params("tx.height must be compared with an integer")
        value, op = condition.value, condition.op
        if op in ("=", ">="):
            low = max(low, value)
        if op in ("=", "<="):
            high = min(high, value)
        if op == ">":
            low = max(low, value + 1)
        if op == "<":
            high = min(high, value - 1)
    return low, high


def _tx_matches(conditions: tuple[Condition, ...], tx: Tx, result: TxResult) -> bool:
    for condition in conditions:
        if condition.key == "tx.kind" and not condition.matches(tx.kind):
            return False
        if condition.key == "tx.signer" and not condition.matches(tx.signer.hex()):
            return False
        if condition.key == "tx.code" and not condition.matches(result.code):
            return False
    return True


async def search_txs(node: NodeApi, params: Params, config: RpcConfig) -> dict[str, Any]:
    text = params.required_str("query", chars_max=SEARCH_QUERY_CHARS_MAX)
    prove = params.flag("prove")
    page = _read_page(params, config)
    try:
        query = parse_query(text)
    except QueryParseError as error:
        raise invalid_params(f"query: {error}") from None
    for condition in query.conditions:
        if condition.key not in SCANNABLE_KEYS:
            raise RpcFault(
                NOT_SUPPORTED,
                "Not supported",
                f"{condition.key!r} needs the tx index, which this node does not have; "
                f"searchable keys: {', '.join(SCANNABLE_KEYS)}",
            )
    low, high = _height_range(query.conditions, node.latest_height())
    if high - low + 1 > config.tx_search_scan_heights_max:
        raise invalid_params(
            f"height range {low}..{high} is wider than {config.tx_search_scan_heights_max} "
            "heights; add tx.height conditions to narrow it"
        )
    heights = range(high, low - 1, -1) if page.descending else range(low, high + 1)
    skip = (page.number - 1) * page.size
    total = 0
    found: list[CommittedTx] = []
    for height in heights:
        for committed in _matching_in_block(node, height, query.conditions):
            if skip <= total < skip + page.size:
                found.append(committed)
            total += 1
        await asyncio.sleep(0)
    txs = [
        _with_proof(node, committed) if prove else committed_tx_json(committed)
        for committed in found
    ]
    return {"txs": txs, "total_count": total}


def _matching_in_block(
    node: NodeApi, height: int, conditions: tuple[Condition, ...]
) -> list[CommittedTx]:
    sealed = node.sealed_block(height)
    results = node.block_results(height)
    if sealed is None or results is None:
        return []  # not executed yet: its results are unknown, so it cannot match
    block = sealed.block
    matches = []
    for index, (tx, tx_hash, result) in enumerate(
        zip(block.txs, block.tx_hashes(), results, strict=True)
    ):
        if _tx_matches(conditions, tx, result):
            matches.append(
                CommittedTx(tx_hash=tx_hash, height=height, index=index, tx=tx, result=result)
            )
    return matches


def _with_proof(node: NodeApi, committed: CommittedTx) -> dict[str, Any]:
    result = committed_tx_json(committed)
    proof = node.tx_proof(committed.tx_hash)
    if proof is not None:
        result["proof"] = tx_proof_json(proof)
    return result
