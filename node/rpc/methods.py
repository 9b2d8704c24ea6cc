"""The RPC methods: each turns Params into a JSON-able result using only the NodeApi.

Every method is a coroutine `(params, context) -> result` registered in `RpcMethods.table()`
with its parameter names (the order used for positional params). Errors are RpcFaults; the
dispatcher maps everything else in one place (node/rpc/dispatch.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from node.api import NodeApi
from node.rpc import encode
from node.rpc.config import RpcConfig
from node.rpc.jsonrpc import (
    COMMIT_TIMEOUT,
    NOT_FOUND,
    SERVER_BUSY,
    WEBSOCKET_ONLY,
    JsonId,
    RpcFault,
    invalid_params,
)
from node.rpc.params import Params, parse_tx_text
from node.rpc.search import search_txs
from protocol import limits as protocol_limits
from protocol.crypto import sha256
from protocol.encoding import DecodeError
from protocol.proof_json import proof_to_json
from protocol.sealed import SealedBlock
from protocol.tx import decode_tx
from services.interface import QueryError, QueryResult

log = logging.getLogger(__name__)

UNHEALTHY = -32007
TX_DECODE_FAILED_CODE = 1  # per-tx result code in broadcast_txs for undecodable txs
QUERY_PATH_CHARS_MAX = 256
QUERY_PARAMS_MAX = 16
QUERY_PARAM_CHARS_MAX = 1024
SUBSCRIPTION_QUERY_CHARS_MAX = 512


class Session(Protocol):
    """What subscribe/unsubscribe need from a WebSocket connection (node/rpc/websocket.py)."""

    def subscribe(self, query_text: str, request_id: JsonId) -> None: ...

    def unsubscribe(self, query_text: str) -> None: ...

    def unsubscribe_all(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    request_id: JsonId
    session: Session | None  # None over HTTP


Handler = Callable[[Params, CallContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    handler: Handler
    params: tuple[str, ...] = ()
    expensive: bool = False  # bounded by request_timeout_s


class RpcMethods:
    def __init__(self, node: NodeApi, config: RpcConfig) -> None:
        self._node = node
        self._config = config
        self._async_submissions: set[asyncio.Task[None]] = set()
        self._commit_waiters = 0

    def table(self) -> dict[str, MethodSpec]:
        spec = MethodSpec
        return {
            "health": spec(self.health),
            "status": spec(self.status),
            "genesis": spec(self.genesis),
            "validators": spec(self.validators),
            "net_info": spec(self.net_info),
            "num_unconfirmed_txs": spec(self.num_unconfirmed_txs),
            "unconfirmed_txs": spec(self.unconfirmed_txs, ("limit",)),
            "block": spec(self.block, ("height",)),
            "block_by_hash": spec(self.block_by_hash, ("hash",)),
            "blockchain": spec(self.blockchain, ("minHeight", "maxHeight"), expensive=True),
            "block_results": spec(self.block_results, ("height",)),
            "commit": spec(self.commit, ("height",)),
            "tx": spec(self.tx, ("hash", "prove")),
            "tx_proof": spec(self.tx_proof, ("hash",)),
            "tx_result_proof": spec(self.tx_result_proof, ("hash",)),
            "tx_search": spec(
                self.tx_search, ("query", "prove", "page", "per_page", "order_by"), expensive=True
            ),
            "query": spec(self.query, ("path", "params"), expensive=True),
            "broadcast_tx_async": spec(self.broadcast_tx_async, ("tx",)),
            "broadcast_tx_sync": spec(self.broadcast_tx_sync, ("tx",), expensive=True),
            "broadcast_tx_commit": spec(self.broadcast_tx_commit, ("tx",)),
            "broadcast_txs": spec(self.broadcast_txs, ("txs",), expensive=True),
            "subscribe": spec(self.subscribe, ("query",)),
            "unsubscribe": spec(self.unsubscribe, ("query",)),
            "unsubscribe_all": spec(self.unsubscribe_all),
        }

    async def close(self) -> None:
        """Cancel background async submissions (server shutdown)."""
        tasks = list(self._async_submissions)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- info ---

    async def health(self, params: Params, context: CallContext) -> Any:
        try:
            return self._node.health()
        except RuntimeError as error:
            raise RpcFault(UNHEALTHY, "Node unhealthy", str(error)[:200]) from None

    async def status(self, params: Params, context: CallContext) -> Any:
        return self._node.status()

    async def genesis(self, params: Params, context: CallContext) -> Any:
        return {"genesis": self._node.genesis()}

    async def validators(self, params: Params, context: CallContext) -> Any:
        validators = self._node.validators()
        return {
            "block_height": self._node.latest_height(),
            "validators": validators,
            "count": len(validators),
            "total": len(validators),
        }

    async def net_info(self, params: Params, context: CallContext) -> Any:
        return self._node.net_info()

    async def num_unconfirmed_txs(self, params: Params, context: CallContext) -> Any:
        count, size = self._node.num_unconfirmed_txs()
        return {"n_txs": count, "total": count, "total_bytes": size}

    async def unconfirmed_txs(self, params: Params, context: CallContext) -> Any:
        limit = params.optional_int(
            "limit", default=30, minimum=1, maximum=self._config.unconfirmed_txs_max
        )
        assert limit is not None
        count, size = self._node.num_unconfirmed_txs()
        txs = self._node.unconfirmed_txs(limit)[:limit]
        return {
            "n_txs": len(txs),
            "total": count,
            "total_bytes": size,
            "txs": [encode.b64(tx.encode()) for tx in txs],
        }

    # --- blocks ---

    def _height_or_latest(self, params: Params) -> int:
        latest = self._node.latest_height()
        height = params.optional_int("height", minimum=1)
        if height is None:
            if latest < 1:
                raise RpcFault(NOT_FOUND, "Not found", "no block committed yet")
            return latest
        if height > latest:
            raise RpcFault(
                NOT_FOUND, "Not found", f"height {height} is above the latest height {latest}"
            )
        return height

    def _sealed_block(self, height: int) -> SealedBlock:
        sealed = self._node.sealed_block(height)
        if sealed is None:
            raise RpcFault(NOT_FOUND, "Not found", f"no block at height {height}")
        return sealed

    async def block(self, params: Params, context: CallContext) -> Any:
        return encode.block_json(self._sealed_block(self._height_or_latest(params)))

    async def block_by_hash(self, params: Params, context: CallContext) -> Any:
        block_hash = params.hash("hash")
        height = self._node.block_height_of(block_hash)
        if height is None:
            raise RpcFault(NOT_FOUND, "Not found", f"no block with hash {block_hash.hex()}")
        return encode.block_json(self._sealed_block(height))

    async def blockchain(self, params: Params, context: CallContext) -> Any:
        """CometBFT semantics: headers from maxHeight down, at most blockchain_headers_max."""
        latest = self._node.latest_height()
        low = params.optional_int("minHeight", default=1, minimum=1)
        high = params.optional_int("maxHeight", default=latest, minimum=1)
        assert low is not None
        assert high is not None
        high = min(high, latest)
        if low > high and high == latest:
            return {"last_height": latest, "block_metas": []}
        if low > high:
            raise invalid_params(f"minHeight {low} is greater than maxHeight {high}")
        low = max(low, high - self._config.blockchain_headers_max + 1)
        metas = [
            encode.block_meta_json(self._sealed_block(height).block)
            for height in range(high, low - 1, -1)
        ]
        return {"last_height": latest, "block_metas": metas}

    async def block_results(self, params: Params, context: CallContext) -> Any:
        height = self._height_or_latest(params)
        results = self._node.block_results(height)
        if results is None:
            raise RpcFault(NOT_FOUND, "Not found", f"block {height} is not executed yet")
        app_hash = self._node.app_hash(height)
        return {
            "height": height,
            "txs_results": [encode.tx_result_json(result) for result in results],
            "app_hash": app_hash.hex() if app_hash is not None else None,
        }

    async def commit(self, params: Params, context: CallContext) -> Any:
        sealed = self._sealed_block(self._height_or_latest(params))
        return {
            "signed_header": {
                "header": encode.header_json(sealed.block.header),
                "commit": encode.seal_json(sealed.seal),
            },
            "canonical": True,
        }

    # --- txs ---

    async def tx(self, params: Params, context: CallContext) -> Any:
        tx_hash = params.hash("hash")
        prove = params.flag("prove")
        committed = self._node.committed_tx(tx_hash)
        if committed is None:
            raise RpcFault(NOT_FOUND, "Not found", f"tx {tx_hash.hex()} not found")
        result = encode.committed_tx_json(committed)
        if prove:
            result["proof"] = self._proof_json(tx_hash)
        return result

    async def tx_proof(self, params: Params, context: CallContext) -> Any:
        """The bare proof JSON: save the result as a file for `seoulchain verify`."""
        return self._proof_json(params.hash("hash"))

    async def tx_result_proof(self, params: Params, context: CallContext) -> Any:
        """Proof of a tx's execution result (code, log, data) against the later sealed
        header that attests its block's results root; `seoulchain verify` reads it too."""
        tx_hash = params.hash("hash")
        proof = self._node.result_proof(tx_hash)
        if proof is None:
            raise RpcFault(
                NOT_FOUND, "Not found", f"no attested result for tx {tx_hash.hex()} (yet)"
            )
        return proof_to_json(proof)

    def _proof_json(self, tx_hash: bytes) -> dict[str, Any]:
        proof = self._node.tx_proof(tx_hash)
        if proof is None:
            raise RpcFault(NOT_FOUND, "Not found", f"no proof for tx {tx_hash.hex()}")
        return encode.tx_proof_json(proof)

    async def tx_search(self, params: Params, context: CallContext) -> Any:
        return await search_txs(self._node, params, self._config)

    async def query(self, params: Params, context: CallContext) -> Any:
        path = params.required_str("path", chars_max=QUERY_PATH_CHARS_MAX)
        arguments = params.dict_of_strings(
            "params", entries_max=QUERY_PARAMS_MAX, chars_max=QUERY_PARAM_CHARS_MAX
        )
        try:
            result = self._node.query(path, arguments)
        except QueryError as error:
            raise invalid_params(str(error)[:300]) from None
        assert isinstance(result, QueryResult), type(result)
        return {
            "path": path,
            "found": result.found,
            "value": result.value,
            "height": result.height,
            "extra": dict(result.extra),
        }

    # --- broadcast ---

    @staticmethod
    def _checked_tx(params: Params) -> bytes:
        raw = params.tx("tx")
        try:
            decode_tx(raw)
        except DecodeError as error:
            raise invalid_params(f"cannot decode tx: {error}") from None
        return raw

    async def broadcast_tx_async(self, params: Params, context: CallContext) -> Any:
        raw = self._checked_tx(params)
        if len(self._async_submissions) >= self._config.async_submissions_max:
            raise RpcFault(SERVER_BUSY, "Server busy", "too many async submissions in flight")
        task = asyncio.get_running_loop().create_task(self._submit_in_background(raw))
        self._async_submissions.add(task)
        task.add_done_callback(self._async_submissions.discard)
        return {"code": 0, "data": "", "log": "", "codespace": "", "hash": sha256(raw).hex()}

    async def _submit_in_background(self, raw: bytes) -> None:
        try:
            result = await self._node.submit_tx(raw)
        except Exception:  # nobody awaits this task: log our bug here or never see it
            log.exception("background submission of tx %s failed", sha256(raw).hex())
            return
        if result.code != 0:
            log.debug(
                "async tx %s refused: code=%d %s", result.tx_hash.hex(), result.code, result.log
            )

    async def broadcast_tx_sync(self, params: Params, context: CallContext) -> Any:
        raw = self._checked_tx(params)
        return encode.submit_json(await self._node.submit_tx(raw))

    async def broadcast_tx_commit(self, params: Params, context: CallContext) -> Any:
        raw = self._checked_tx(params)
        if self._commit_waiters >= self._config.commit_waiters_max:
            raise RpcFault(SERVER_BUSY, "Server busy", "too many broadcast_tx_commit waiters")
        self._commit_waiters += 1
        try:
            return await self._submit_and_wait(raw)
        finally:
            self._commit_waiters -= 1

    async def _submit_and_wait(self, raw: bytes) -> Any:
        checked = await self._node.submit_tx(raw)
        check_json = encode.submit_json(checked)
        tx_hash = checked.tx_hash.hex()
        if checked.code != 0:
            return {"check_tx": check_json, "tx_result": None, "hash": tx_hash, "height": 0}
        timeout_s = self._config.commit_timeout_s
        committed = await self._node.wait_for_commit(checked.tx_hash, timeout_s=timeout_s)
        if committed is None:
            message = f"tx not committed within {timeout_s:g} s"
            raise RpcFault(COMMIT_TIMEOUT, "Timed out waiting for commit", f"{message}: {tx_hash}")
        return {
            "check_tx": check_json,
            "tx_result": encode.tx_result_json(committed.result),
            "hash": tx_hash,
            "height": committed.height,
        }

    async def broadcast_txs(self, params: Params, context: CallContext) -> Any:
        """Many txs in one call: undecodable ones get a per-tx error result; the rest go to
        the mempool in one submit_txs call, in order."""
        texts = params.items("txs", items_max=self._config.broadcast_txs_max)
        results: list[dict[str, Any] | None] = []
        good: list[bytes] = []
        for position, raw in enumerate(_raw_txs(texts)):
            problem = _decode_problem(raw) if raw is not None else "not base64 or 0x-hex"
            if problem is None:
                assert raw is not None
                good.append(raw)
                results.append(None)
                continue
            results.append(_refused_json(raw, f"txs[{position}]: cannot decode tx: {problem}"))
        submitted = iter(await self._node.submit_txs(good) if good else [])
        merged = [
            item if item is not None else encode.submit_json(next(submitted)) for item in results
        ]
        assert next(submitted, None) is None, "submit_txs returned more results than txs"
        return {"results": merged}

    # --- WebSocket only ---

    @staticmethod
    def _session(context: CallContext) -> Session:
        if context.session is None:
            raise RpcFault(WEBSOCKET_ONLY, "WebSocket only", "connect to /websocket to subscribe")
        return context.session

    async def subscribe(self, params: Params, context: CallContext) -> Any:
        session = self._session(context)
        session.subscribe(
            params.required_str("query", chars_max=SUBSCRIPTION_QUERY_CHARS_MAX),
            context.request_id,
        )
        return {}

    async def unsubscribe(self, params: Params, context: CallContext) -> Any:
        session = self._session(context)
        session.unsubscribe(params.required_str("query", chars_max=SUBSCRIPTION_QUERY_CHARS_MAX))
        return {}

    async def unsubscribe_all(self, params: Params, context: CallContext) -> Any:
        self._session(context).unsubscribe_all()
        return {}


def _raw_txs(texts: list[Any]) -> list[bytes | None]:
    """The raw bytes of each tx text (None where it is not one), exactly as
    `parse_tx_text` would give them, cheaper. msgspec decodes a list of base64 strings in C
    at a quarter of binascii's per-item cost; it accepts a subset of what parse_tx_text
    accepts, with the same bytes (tests/node/rpc/test_rpc_broadcast_fast.py), so a list it
    refuses, and any item it decodes that parse_tx_text might read otherwise (the "0x" hex
    form and quoted text start with '0' or '"'; empty or oversized txs get an error
    there), goes through parse_tx_text one by one."""
    try:
        decoded = msgspec.convert(texts, list[bytes])
    except msgspec.ValidationError:
        return [_tx_or_none(text) for text in texts]
    return [
        raw if 0 < len(raw) <= protocol_limits.tx_bytes_max and text[:1] not in _NOT_PLAIN
        else _tx_or_none(text)
        for text, raw in zip(texts, decoded, strict=True)
    ]  # fmt: skip


_NOT_PLAIN = ("0", '"')  # first characters of the hex form and of CometBFT's quoted form


def _tx_or_none(text: Any) -> bytes | None:
    try:
        return parse_tx_text(text)
    except RpcFault:
        return None


def _decode_problem(raw: bytes) -> str | None:
    try:
        decode_tx(raw)
    except DecodeError as error:
        return str(error)
    return None


def _refused_json(raw: bytes | None, log_text: str) -> dict[str, Any]:
    return {
        "code": TX_DECODE_FAILED_CODE,
        "data": "",
        "log": log_text[:300],
        "codespace": "rpc",
        "hash": sha256(raw).hex() if raw is not None else "",
    }
