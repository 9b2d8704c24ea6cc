"""The events a node publishes after a block is durable: one "Tx" per tx, then "NewBlock".

Attributes are what subscription queries match on (node/events.py): the tx kind, its hash,
the height, the result code, and every attribute the services attached to the tx.
"""

from __future__ import annotations

import base64

from node.api import CommittedTx, NodeEvent
from node.executor import ExecutedBlock
from protocol.results import TxResult


def _result_json(result: TxResult) -> dict[str, object]:
    return {"code": result.code, "log": result.log, "data": base64.b64encode(result.data).decode()}


def tx_event(committed: CommittedTx, executed: ExecutedBlock) -> NodeEvent:
    attributes = {
        "tx.hash": committed.tx_hash.hex(),
        "tx.height": str(committed.height),
        "tx.kind": committed.tx.kind,
        "tx.signer": committed.tx.signer.hex(),
        "tx.code": str(committed.result.code),
    }
    for event in executed.outcome.events:
        if event.tx_index == committed.index:
            attributes.update(event.attributes)
    return NodeEvent(
        kind="Tx",
        height=committed.height,
        data={
            "hash": committed.tx_hash.hex(),
            "height": committed.height,
            "index": committed.index,
            "kind": committed.tx.kind,
            "tx": base64.b64encode(committed.tx.encode()).decode(),
            "result": _result_json(committed.result),
        },
        attributes=attributes,
    )


def new_block_event(executed: ExecutedBlock) -> NodeEvent:
    header = executed.sealed.block.header
    return NodeEvent(
        kind="NewBlock",
        height=header.height,
        data={
            "height": header.height,
            "hash": executed.block_hash.hex(),
            "time_ms": header.time_ms,
            "num_txs": header.tx_count,
            "proposer": header.proposer.hex(),
            "app_hash": executed.outcome.app_hash.hex(),
            "tx_hashes": [tx_hash.hex() for tx_hash in executed.tx_hashes],
        },
        attributes={"block.height": str(header.height)},
    )
