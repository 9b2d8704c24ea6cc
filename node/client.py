"""Async client of a node's JSON-RPC server (docs/RPC.md), used by the CLI, the bench and tests.

One aiohttp session per client (a pooled, capped set of keep-alive connections); every call
has a timeout. Errors are typed: RpcError for a JSON-RPC error object (code, message, data),
RpcTransportError for anything that is not a JSON-RPC answer (connection refused, HTTP 413,
503 from the connection cap, a timeout). `subscribe()` opens a WebSocket and yields events.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import msgspec

from protocol.tx import Tx

log = logging.getLogger(__name__)

NOT_FOUND = -32002  # mirrors node.rpc.jsonrpc.NOT_FOUND (the client avoids importing the server)
DEFAULT_URL = "http://127.0.0.1:26657"


class RpcError(Exception):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code} {message}" + (f": {data}" if data is not None else ""))
        self.code = code
        self.message = message
        self.data = data


class RpcTransportError(Exception):
    """No JSON-RPC answer: connection failure, timeout, or an HTTP error status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SubscriptionDropped(Exception):
    """The server closed the event WebSocket (e.g. we were a slow consumer)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"websocket closed ({code}): {reason}")
        self.code = code
        self.reason = reason


def tx_text(tx: Tx | bytes) -> str:
    """Base64 of a tx's canonical bytes: the wire form of every broadcast method."""
    raw = tx.encode() if isinstance(tx, Tx) else tx
    return base64.b64encode(raw).decode("ascii")


def _result_of(response: Any) -> Any:
    if not isinstance(response, dict):
        raise RpcTransportError(f"not a JSON-RPC response: {str(response)[:200]}")
    error = response.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise RpcTransportError("malformed JSON-RPC error object")
        raise RpcError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
    if "result" not in response:
        raise RpcTransportError("JSON-RPC response without result or error")
    return response["result"]


class RpcClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout_s: float = 15.0,
        connections_max: int = 32,
        commit_timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.commit_timeout_s = commit_timeout_s
        self._connections_max = connections_max
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections_max)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    # --- raw calls ---

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params:
            request["params"] = dict(params)
        return _result_of(await self._post(request, timeout_s or self.timeout_s))

    async def batch(
        self,
        calls: Sequence[tuple[str, Mapping[str, Any] | None]],
        *,
        timeout_s: float | None = None,
    ) -> list[Any]:
        """Results in call order; a failed call's slot holds its RpcError (not raised)."""
        requests = []
        for method, params in calls:
            request: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
            if params:
                request["params"] = dict(params)
            requests.append(request)
        responses = await self._post(requests, timeout_s or self.timeout_s)
        if isinstance(responses, dict):  # the whole batch was refused
            _result_of(responses)
        if not isinstance(responses, list):
            raise RpcTransportError("batch answered with a non-list")
        by_id = {item.get("id"): item for item in responses if isinstance(item, dict)}
        results: list[Any] = []
        for request in requests:
            try:
                results.append(_result_of(by_id.get(request["id"])))
            except RpcError as error:
                results.append(error)
        return results

    async def _post(self, document: Any, timeout_s: float) -> Any:
        body = msgspec.json.encode(document)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        headers = {"Content-Type": "application/json"}
        try:
            async with self.session.post(
                self.url + "/", data=body, headers=headers, timeout=timeout
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RpcTransportError(f"{self.url}: {type(error).__name__}: {error}") from None
        try:
            decoded = msgspec.json.decode(payload) if payload else None
        except msgspec.DecodeError:
            raise RpcTransportError(f"HTTP {status}: not JSON", status=status) from None
        if status != 200:
            if isinstance(decoded, dict) and "error" in decoded:
                _result_of(decoded)
            raise RpcTransportError(f"HTTP {status}", status=status)
        return decoded

    # --- helpers ---

    async def health(self) -> Any:
        return await self.call("health")

    async def status(self) -> Any:
        return await self.call("status")

    async def broadcast_tx_async(self, tx: Tx | bytes) -> Any:
        return await self.call("broadcast_tx_async", {"tx": tx_text(tx)})

    async def broadcast_tx_sync(self, tx: Tx | bytes) -> Any:
        return await self.call("broadcast_tx_sync", {"tx": tx_text(tx)})

    async def broadcast_tx_commit(self, tx: Tx | bytes) -> Any:
        timeout_s = self.commit_timeout_s + 5.0  # longer than the server's own commit wait
        return await self.call("broadcast_tx_commit", {"tx": tx_text(tx)}, timeout_s=timeout_s)

    async def broadcast_txs(self, txs: Sequence[Tx | bytes]) -> list[Any]:
        result = await self.call("broadcast_txs", {"txs": [tx_text(tx) for tx in txs]})
        return list(result["results"])

    async def block(self, height: int | None = None) -> Any:
        return await self.call("block", {"height": height} if height is not None else None)

    async def commit(self, height: int | None = None) -> Any:
        return await self.call("commit", {"height": height} if height is not None else None)

    async def tx(self, tx_hash: bytes | str, *, prove: bool = False) -> Any:
        text = tx_hash.hex() if isinstance(tx_hash, bytes) else tx_hash
        return await self.call("tx", {"hash": text, "prove": prove})

    async def query(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self.call("query", {"path": path, "params": dict(params or {})})

    async def wait_for_tx(
        self, tx_hash: bytes | str, *, timeout_s: float = 30.0, poll_interval_s: float = 0.1
    ) -> Any:
        """Poll `tx` until the node has it committed; RpcTransportError on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    try:
                        return await self.tx(tx_hash)
                    except RpcError as error:
                        if error.code != NOT_FOUND:
                            raise
                    await asyncio.sleep(poll_interval_s)
        except TimeoutError:
            raise RpcTransportError(f"tx not committed within {timeout_s:g} s") from None

    def subscribe(self, query: str, *, reconnect: bool = False) -> EventStream:
        return EventStream(self, query, reconnect=reconnect)


class EventStream:
    """`async with client.subscribe("tm.event='NewBlock'") as events: async for e in events`.

    Each item is the event `result` ({"query", "data", "events"}). With reconnect=True a lost
    connection is reopened (up to `reconnects_max` times, with backoff) and the query
    resubscribed; events published while disconnected are lost. Without it, a server-side
    close raises SubscriptionDropped with the server's reason."""

    reconnects_max = 5

    def __init__(self, client: RpcClient, query: str, *, reconnect: bool) -> None:
        self._client = client
        self._query = query
        self._reconnect = reconnect
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> EventStream:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    def __aiter__(self) -> EventStream:
        return self

    async def _open(self) -> None:
        url = self._client.url.replace("http://", "ws://", 1) + "/websocket"
        try:
            self._ws = await self._client.session.ws_connect(
                url, heartbeat=30.0, timeout=aiohttp.ClientWSTimeout(ws_close=5.0)
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RpcTransportError(f"{url}: {error}") from None
        request = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "subscribe",
            "params": {"query": self._query},
        }
        await self._ws.send_str(msgspec.json.encode(request).decode())
        async with asyncio.timeout(self._client.timeout_s):
            reply = await self._ws.receive()
        if reply.type != aiohttp.WSMsgType.TEXT:
            raise RpcTransportError(f"subscribe got {reply.type.name} instead of an answer")
        _result_of(msgspec.json.decode(reply.data))

    async def __anext__(self) -> Any:
        attempts = 0
        while True:
            assert self._ws is not None, "use EventStream as an async context manager"
            message = await self._ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                try:
                    document = msgspec.json.decode(message.data)
                except msgspec.DecodeError:
                    raise RpcTransportError("event stream sent a non-JSON message") from None
                if isinstance(document, dict) and str(document.get("id", "")).endswith("#event"):
                    return _result_of(document)
                continue
            code, reason = self._ws.close_code, str(message.extra or "")
            if not self._reconnect or attempts >= self.reconnects_max:
                raise SubscriptionDropped(code, reason)
            attempts += 1
            log.info("event stream lost (%s %s); reconnecting, attempt %d", code, reason, attempts)
            await asyncio.sleep(min(0.1 * 2**attempts, 5.0))
            await self._open()
