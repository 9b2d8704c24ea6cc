"""The RPC method names, in one place: the server's table, the metrics label allowlist and
the docs all use this list, so a metric label can never be a client-chosen string."""

from __future__ import annotations

INFO_METHODS = (
    "health",
    "status",
    "genesis",
    "validators",
    "net_info",
    "num_unconfirmed_txs",
    "unconfirmed_txs",
    "block",
    "block_by_hash",
    "blockchain",
    "block_results",
    "commit",
    "tx",
    "tx_proof",
    "tx_result_proof",
    "tx_search",
    "query",
)
BROADCAST_METHODS = (
    "broadcast_tx_async",
    "broadcast_tx_sync",
    "broadcast_tx_commit",
    "broadcast_txs",
)
WEBSOCKET_METHODS = ("subscribe", "unsubscribe", "unsubscribe_all")
METHOD_NAMES = INFO_METHODS + BROADCAST_METHODS + WEBSOCKET_METHODS
