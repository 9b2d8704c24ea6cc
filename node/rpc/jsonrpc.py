"""JSON-RPC 2.0 envelopes, pure: bytes in, requests or error responses out; no I/O.

Error codes are defined here and nowhere else (docs/RPC.md §Errors). The server never puts an
exception's text from an unexpected failure into a response: -32603 says only "internal
error"; the traceback goes to the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server-defined (the -32000..-32099 range the spec reserves for implementations).
SERVER_BUSY = -32000  # a bounded resource is full (commit waiters, async submissions, …)
COMMIT_TIMEOUT = -32001  # broadcast_tx_commit: not committed within the timeout
NOT_FOUND = -32002  # no block / tx / result at that height or hash
REQUEST_TIMEOUT = -32003  # an expensive call exceeded request_timeout_s
SUBSCRIPTION_LIMIT = -32004  # too many subscriptions or subscribed clients
WEBSOCKET_ONLY = -32005  # subscribe and friends need a WebSocket
NOT_SUPPORTED = -32006  # the node cannot answer this form of query (e.g. no index)

ID_STRING_CHARS_MAX = 256
ID_INT_MAX = (1 << 63) - 1

JsonId = str | int | None


class RpcFault(Exception):
    """An error that becomes a JSON-RPC error object; message and data are shown to the client,
    so they must never carry internals."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcFault:
    return RpcFault(INVALID_PARAMS, "Invalid params", message)


@dataclass(frozen=True, slots=True)
class Request:
    id: JsonId
    method: str
    params: dict[str, Any] | list[Any] | None
    notification: bool  # no "id" member: execute, never answer


def error_response(request_id: JsonId, fault: RpcFault) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": fault.to_json()}


def result_response(request_id: JsonId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def decode_json(body: bytes | str) -> Any:
    """The parsed document, or RpcFault(PARSE_ERROR). Deep nesting and absurd numbers are parse
    errors too, never an escaping RecursionError or ValueError."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError) as error:
        detail = str(error)[:200] if not isinstance(error, RecursionError) else "nested too deep"
        raise RpcFault(PARSE_ERROR, "Parse error", detail) from None


def encode_json(document: Any) -> bytes:
    return msgspec.json.encode(document)


def parse_envelope(document: Any, *, batch_max: int) -> list[Request | dict[str, Any]]:
    """Validate a decoded body (a single request or a batch; the caller knows which from
    `isinstance(document, list)`). Items are Requests to run, or error responses already
    decided for malformed members. An empty or over-long batch is one RpcFault."""
    if isinstance(document, list):
        if not document:
            raise RpcFault(INVALID_REQUEST, "Invalid Request", "empty batch")
        if len(document) > batch_max:
            raise RpcFault(
                INVALID_REQUEST,
                "Invalid Request",
                f"batch of {len(document)} requests exceeds the maximum of {batch_max}",
            )
        return [_parse_one(item) for item in document]
    return [_parse_one(document)]


def _parse_one(item: Any) -> Request | dict[str, Any]:
    if not isinstance(item, dict):
        return error_response(None, RpcFault(INVALID_REQUEST, "Invalid Request", "not an object"))
    request_id, id_problem = _valid_id(item)
    if id_problem is not None:
        return error_response(None, RpcFault(INVALID_REQUEST, "Invalid Request", id_problem))
    if item.get("jsonrpc") != "2.0":
        fault = RpcFault(INVALID_REQUEST, "Invalid Request", 'jsonrpc must be "2.0"')
        return error_response(request_id, fault)
    method = item.get("method")
    if not isinstance(method, str) or not method:
        fault = RpcFault(INVALID_REQUEST, "Invalid Request", "method must be a non-empty string")
        return error_response(request_id, fault)
    params = item.get("params")
    if params is not None and not isinstance(params, dict | list):
        fault = RpcFault(INVALID_REQUEST, "Invalid Request", "params must be an object or array")
        return error_response(request_id, fault)
    unknown = set(item) - {"jsonrpc", "method", "params", "id"}
    if unknown:
        shown = ", ".join(sorted(str(key)[:40] for key in unknown)[:5])
        fault = RpcFault(INVALID_REQUEST, "Invalid Request", f"unknown members: {shown}")
        return error_response(request_id, fault)
    return Request(id=request_id, method=method[:100], params=params, notification="id" not in item)


def _valid_id(item: dict[str, Any]) -> tuple[JsonId, str | None]:
    """(id, None) if the id is a string, integer or null within bounds; else (None, reason)."""
    if "id" not in item:
        return None, None
    value = item["id"]
    if value is None:
        return None, None
    if isinstance(value, (bool, float)):
        return None, "id must be a string, an integer or null"
    if isinstance(value, int):
        if -ID_INT_MAX <= value <= ID_INT_MAX:
            return value, None
        return None, "id is out of the 64-bit integer range"
    if isinstance(value, str):
        if len(value) <= ID_STRING_CHARS_MAX:
            return value, None
        return None, f"id is longer than {ID_STRING_CHARS_MAX} characters"
    return None, "id must be a string, an integer or null"
