"""Every limit of the RPC server, with its default and the reason for it (docs/RPC.md §Limits).

Defaults follow CometBFT's config.go where it has the same knob (loopback bind, 1 MB body,
10 s commit timeout, 100 subscription clients, 5 subscriptions per client, 900 connections);
the batch cap is larger than CometBFT's 10 because `broadcast_txs` exists for bulk submission
and a batch of reads is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcConfig:
    host: str = "127.0.0.1"  # loopback unless the operator says otherwise
    port: int = 26657  # 0 picks a free port (tests)
    body_bytes_max: int = 1 << 20  # one HTTP body; refused with 413 before reading further
    body_read_timeout_s: float = 10.0  # a body trickled slower than this is refused (408)
    idle_timeout_s: float = 10.0  # headers not complete, or keep-alive idle: connection closed
    batch_requests_max: int = 100  # JSON-RPC batch length
    connections_open_max: int = 900  # HTTP + WebSocket; excess connections get a 503
    ws_clients_max: int = 100  # WebSocket clients holding at least one subscription
    ws_subscriptions_per_client_max: int = 5
    ws_message_bytes_max: int = 1 << 20  # one incoming WebSocket message
    ws_event_queue_max: int = 100  # events buffered per subscription; overflow drops the client
    ws_inflight_requests_max: int = 16  # concurrent calls per WebSocket connection
    ws_heartbeat_s: float = 30.0  # ping interval; a silent peer is closed
    commit_timeout_s: float = 10.0  # broadcast_tx_commit wait
    commit_waiters_max: int = 200  # concurrent broadcast_tx_commit calls
    async_submissions_max: int = 1_000  # broadcast_tx_async submissions still running
    request_timeout_s: float = 10.0  # expensive methods (awaiting node work)
    broadcast_txs_max: int = 1_000  # txs in one broadcast_txs call
    blockchain_headers_max: int = 20  # headers in one blockchain call (CometBFT: 20)
    unconfirmed_txs_max: int = 100  # `limit` cap of unconfirmed_txs
    tx_search_per_page_max: int = 100
    tx_search_scan_heights_max: int = 1_000  # heights one unindexed tx_search may read
    cors_allowed_origins: tuple[str, ...] = ()  # empty: no Access-Control-Allow-Origin ever

    def invalid(self) -> str | None:
        """None if usable; otherwise what is wrong (checked by the server at start)."""
        if not 0 <= self.port <= 65535:
            return f"port {self.port} out of range"
        positive = {
            name: getattr(self, name)
            for name in (
                "body_bytes_max",
                "body_read_timeout_s",
                "idle_timeout_s",
                "batch_requests_max",
                "connections_open_max",
                "ws_clients_max",
                "ws_subscriptions_per_client_max",
                "ws_message_bytes_max",
                "ws_event_queue_max",
                "ws_inflight_requests_max",
                "ws_heartbeat_s",
                "commit_timeout_s",
                "commit_waiters_max",
                "async_submissions_max",
                "request_timeout_s",
                "broadcast_txs_max",
                "blockchain_headers_max",
                "unconfirmed_txs_max",
                "tx_search_per_page_max",
                "tx_search_scan_heights_max",
            )
        }
        for name, value in positive.items():
            if not value > 0:
                return f"{name} must be positive, got {value}"
        return None
