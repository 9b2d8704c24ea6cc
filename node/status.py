"""The `status` RPC document: CometBFT's shape (node_info, sync_info, validator_info) plus a
`consensus` section that explains a stall at a glance: engine, round, leader, role, what
is in flight, and how long since the last commit."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.node import Node


def status_document(node: Node) -> dict[str, Any]:
    genesis = node.chain_genesis
    height = node.store.committed_height()
    block_hash = node.store.block_hash(height) if height else None
    app_hash = node.store.app_hash(height)
    sealed = node.reader.sealed_block(height) if height else None
    engine = node.driver.status()
    index = genesis.validator_index(node.key.public_key)
    last_commit_age_s = (
        None
        if node._last_commit_monotonic is None
        else round(time.monotonic() - node._last_commit_monotonic, 3)
    )
    return {
        "node_info": {
            "id": node.key.public_key.hex(),
            "moniker": node.config.node.moniker,
            "network": genesis.chain_id,
            "version": "0.1.0",
            "listen_addr": node.config.p2p.listen_address,
            "rpc_address": node.config.rpc.listen_address,
        },
        "sync_info": {
            "latest_block_height": height,
            "latest_block_hash": block_hash.hex() if block_hash else "",
            "latest_app_hash": app_hash.hex() if app_hash else "",
            "latest_block_time_ms": sealed.block.header.time_ms if sealed else 0,
            "catching_up": False,
        },
        "validator_info": {
            "pub_key": node.key.public_key.hex(),
            "index": index,
            "voting_power": 1 if index is not None else 0,
        },
        "consensus": {
            "kind": engine.kind,
            "fault_model": "byzantine"
            if engine.kind == "pbft"
            else "crash"
            if engine.kind == "raft"
            else "single validator",
            "round": engine.round,
            "leader": engine.leader,
            "role": engine.role,
            "committed_height": engine.committed_height,
            "in_flight": engine.in_flight,
            "last_commit_age_s": last_commit_age_s,
            "extra": dict(engine.extra),
        },
        "mempool": {"size": len(node.mempool), "bytes": node.mempool.size_bytes()},
    }
