"""A minimal JSON-RPC 2.0 caller for the CLI and the cluster manager.

The full async client (node/client.py) belongs to the RPC engineer; the CLI needs only
"call one method, get the result or a clear error", with a timeout and a cap on the answer
size, so it carries this small one and does not depend on the client's shape.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

RESPONSE_BYTES_MAX = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 15.0
_ids = itertools.count(1)


class RpcCallError(Exception):
    """The node could not be reached, or answered with a JSON-RPC error."""


async def call(
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    session: aiohttp.ClientSession | None = None,
) -> Any:
    """The `result` of one JSON-RPC call; RpcCallError (one line) on any failure."""
    request = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}
    try:
        if session is None:
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with aiohttp.ClientSession(timeout=timeout) as own_session:
                body = await _post(own_session, url, request)
        else:
            body = await _post(session, url, request)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        detail = str(error) or type(error).__name__
        raise RpcCallError(f"cannot reach {url} ({method}): {detail}") from None
    return _result_of(body, method)


async def _post(session: aiohttp.ClientSession, url: str, request: dict[str, Any]) -> bytes:
    async with session.post(url, json=request) as response:
        body = await response.content.read(RESPONSE_BYTES_MAX + 1)
        if len(body) > RESPONSE_BYTES_MAX:
            raise RpcCallError(f"{url}: answer larger than {RESPONSE_BYTES_MAX} bytes")
        if response.status >= 500 and not body:
            raise RpcCallError(f"{url}: HTTP {response.status}")
        return body


def _result_of(body: bytes, method: str) -> Any:
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RpcCallError(f"{method}: the node's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise RpcCallError(f"{method}: unexpected answer shape")
    error = answer.get("error")
    if error is not None:
        if isinstance(error, dict):
            message = str(error.get("message", "error"))
            data = error.get("data")
            detail = f": {data}" if data else ""
            raise RpcCallError(f"{method}: {message}{detail} (code {error.get('code')})")
        raise RpcCallError(f"{method}: {error}")
    if "result" not in answer:
        raise RpcCallError(f"{method}: answer has neither result nor error")
    return answer["result"]


def call_sync(url: str, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """`call` from synchronous code (the CLI's commands)."""
    return asyncio.run(call(url, method, params, **kwargs))
