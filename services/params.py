"""Parsing of query parameters, shared by every service's `query`.

Params arrive as strings from an RPC client. Anything unexpected — an unknown name, bad hex,
a limit out of range — raises QueryError with a message the client can act on, and the RPC
layer answers "invalid params". Nothing here raises anything else.
"""

from __future__ import annotations

from collections.abc import Mapping

from services import limits
from services.interface import QueryError


def expect_params(
    params: Mapping[str, str], *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        raise QueryError(f"unknown params {unknown}; allowed: {sorted(required + optional)}")
    missing = [name for name in required if name not in params]
    if missing:
        raise QueryError(f"missing params {missing}")
    for name, value in params.items():
        if not isinstance(value, str) or len(value) > limits.query_param_chars_max:
            raise QueryError(
                f"param {name!r} must be a string of <= {limits.query_param_chars_max} characters"
            )


def hex_param(params: Mapping[str, str], name: str, *, size: int) -> bytes:
    text = params[name]
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise QueryError(f"param {name!r} is not hex") from None
    if len(value) != size:
        raise QueryError(f"param {name!r} is {len(value)} bytes, want {size}")
    return value


def limit_param(params: Mapping[str, str]) -> int:
    """Page size: "limit" in 1..query_page_max, default query_page_default."""
    text = params.get("limit")
    if text is None or text == "":
        return limits.query_page_default
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise QueryError("param 'limit' must be a decimal integer")
    limit = int(text)
    if not 1 <= limit <= limits.query_page_max:
        raise QueryError(f"param 'limit' must be 1..{limits.query_page_max}")
    return limit


I63_MAX = 2**63 - 1  # msgspec integer bounds must fit an int64


def at_ms_param(query: Mapping[str, str], *, required: bool = False) -> int | None:
    """The instant (block-time ms) an expiry or validity window is judged at, or None when
    absent and not required: queries see committed state, not a clock."""
    text = query.get("at_ms")
    if text is None or text == "":
        if required:
            raise QueryError("param 'at_ms' is required")
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > I63_MAX:
        raise QueryError("param 'at_ms' must be a decimal integer in 0..2^63-1")
    return int(text)
