"""Pure parts of the RPC layer: envelope validation, params coercion, config checks,
and the dispatcher against a table of stub methods (no sockets)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from node.rpc.config import RpcConfig
from node.rpc.dispatch import Dispatcher
from node.rpc.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    REQUEST_TIMEOUT,
    Request,
    RpcFault,
    decode_json,
    parse_envelope,
)
from node.rpc.methods import CallContext, MethodSpec
from node.rpc.params import Params, parse_hash, parse_tx_text
from protocol import limits


def test_decode_json_turns_every_failure_into_parse_error() -> None:
    for body in (b"{", b"\xff\xfe", b"[" * 10_000, b"1" * 5000, b"nan"):
        with pytest.raises(RpcFault) as fault:
            decode_json(body)
        assert fault.value.code == PARSE_ERROR


def test_envelope_single_and_notification() -> None:
    [request] = parse_envelope({"jsonrpc": "2.0", "method": "m", "id": 7}, batch_max=5)
    assert request == Request(id=7, method="m", params=None, notification=False)
    [note] = parse_envelope({"jsonrpc": "2.0", "method": "m"}, batch_max=5)
    assert isinstance(note, Request)
    assert note.notification


def test_envelope_batch_limits() -> None:
    with pytest.raises(RpcFault, match="Invalid Request"):
        parse_envelope([], batch_max=5)
    with pytest.raises(RpcFault) as fault:
        parse_envelope([{}] * 6, batch_max=5)
    assert "exceeds the maximum of 5" in str(fault.value.data)
    items = parse_envelope([{"jsonrpc": "2.0", "method": "m", "id": 1}, 3], batch_max=5)
    assert isinstance(items[0], Request)
    assert items[1]["error"]["code"] == INVALID_REQUEST  # type: ignore[index]


@pytest.mark.parametrize("bad_id", [True, 1.5, [1], {"a": 1}, 2**64, "x" * 257])
def test_envelope_rejects_bad_ids(bad_id: Any) -> None:
    [item] = parse_envelope({"jsonrpc": "2.0", "method": "m", "id": bad_id}, batch_max=5)
    assert isinstance(item, dict)
    assert item["id"] is None
    assert item["error"]["code"] == INVALID_REQUEST


def test_params_positional_named_and_unknown() -> None:
    params = Params([5, True], ("height", "prove"))
    assert params.required_int("height") == 5
    assert params.flag("prove") is True
    with pytest.raises(RpcFault) as fault:
        Params([1, 2, 3], ("height",))
    assert fault.value.code == INVALID_PARAMS
    with pytest.raises(RpcFault, match="Invalid params"):
        Params({"hieght": 1}, ("height",))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("3", 3), ('"3"', 3), (None, None)],
)
def test_params_integers_from_json_and_uri(value: Any, expected: int | None) -> None:
    assert Params({"h": value}, ("h",)).optional_int("h") == expected


@pytest.mark.parametrize("value", [True, 1.0, "1e3", "-", "0x10", [], "9" * 30, -1])
def test_params_integer_rejects(value: Any) -> None:
    with pytest.raises(RpcFault):
        Params({"h": value}, ("h",)).optional_int("h")


def test_params_flags_and_strings() -> None:
    params = Params({"a": "true", "b": "0", "c": '"text"', "d": 3}, ("a", "b", "c", "d"))
    assert params.flag("a") is True
    assert params.flag("b") is False
    assert params.required_str("c", chars_max=10) == "text"
    with pytest.raises(RpcFault):
        params.required_str("d", chars_max=10)
    with pytest.raises(RpcFault):
        params.required_str("c", chars_max=3)


def test_hash_and_tx_parsing() -> None:
    digest = bytes(range(32))
    for text in (digest.hex(), digest.hex().upper(), "0x" + digest.hex(), f'"{digest.hex()}"'):
        assert parse_hash(text) == digest
    for bad in ("00" * 31, "zz" * 32, ""):
        with pytest.raises(RpcFault):
            parse_hash(bad)
    raw = b"\x01\x02\x03"
    assert parse_tx_text(base64.b64encode(raw).decode()) == raw
    assert parse_tx_text("0x010203") == raw
    bad_texts: tuple[Any, ...] = (
        "%%%",
        "",
        "0xzz",
        5,
        base64.b64encode(b"x" * (limits.tx_bytes_max + 1)).decode(),
    )
    for bad_text in bad_texts:
        with pytest.raises(RpcFault):
            parse_tx_text(bad_text)


def test_config_validation() -> None:
    assert RpcConfig().invalid() is None
    assert RpcConfig().host == "127.0.0.1"
    assert "batch_requests_max" in (RpcConfig(batch_requests_max=0).invalid() or "")
    assert "port" in (RpcConfig(port=70000).invalid() or "")


async def _ok(params: Params, context: CallContext) -> Any:
    return {"id": context.request_id}


async def _bug(params: Params, context: CallContext) -> Any:
    raise KeyError("internal secret")


async def _slow(params: Params, context: CallContext) -> Any:
    import asyncio

    await asyncio.sleep(10)


def _dispatcher() -> Dispatcher:
    table = {
        "ok": MethodSpec(_ok),
        "bug": MethodSpec(_bug),
        "slow": MethodSpec(_slow, expensive=True),
    }
    return Dispatcher(table, RpcConfig(request_timeout_s=0.01), None)


async def test_dispatcher_maps_bugs_and_timeouts() -> None:
    dispatcher = _dispatcher()
    bug = await dispatcher.handle_document({"jsonrpc": "2.0", "id": 1, "method": "bug"}, None)
    assert bug["error"] == {"code": INTERNAL_ERROR, "message": "Internal error"}
    slow = await dispatcher.handle_document({"jsonrpc": "2.0", "id": 2, "method": "slow"}, None)
    assert slow["error"]["code"] == REQUEST_TIMEOUT


async def test_dispatcher_batch_keeps_order_and_skips_notifications() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ok"},
        {"jsonrpc": "2.0", "method": "ok"},
        {"jsonrpc": "2.0", "id": "b", "method": "ok"},
    ]
    answer = await _dispatcher().handle_document(batch, None)
    assert [item["id"] for item in answer] == [1, "b"]
    assert await _dispatcher().handle_document([batch[1]], None) is None
