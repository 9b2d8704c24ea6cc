"""Typed access to a call's params, the same for JSON bodies and GET query strings.

Why one class for both: GET `/block?height=5` gives strings, POST gives JSON values, and a
method must not care. So integers may arrive as JSON numbers or digit strings (CometBFT clients
send heights as strings), strings may be wrapped in double quotes (CometBFT's URI form), hashes
are hex with or without "0x", txs are base64 or "0x"-hex. Every problem is an RpcFault with
INVALID_PARAMS naming the parameter; unknown parameter names are refused so that a typo is not
silently ignored.
"""

from __future__ import annotations

import binascii
from typing import Any

from node.rpc.jsonrpc import invalid_params
from protocol import limits
from protocol.crypto import HASH_BYTES

_MISSING = object()
# Base64 of the largest tx, plus padding slack: checked before decoding anything.
_TX_TEXT_CHARS_MAX = (limits.tx_bytes_max * 4) // 3 + 8


class Params:
    def __init__(self, raw: dict[str, Any] | list[Any] | None, names: tuple[str, ...]) -> None:
        if raw is None:
            raw = {}
        if isinstance(raw, list):
            if len(raw) > len(names):
                raise invalid_params(f"expected at most {len(names)} params, got {len(raw)}")
            raw = dict(zip(names, raw, strict=False))
        unknown = [str(key)[:40] for key in raw if key not in names]
        if unknown:
            allowed = ", ".join(names) or "none"
            raise invalid_params(f"unknown param {unknown[0]!r} (allowed: {allowed})")
        self._values: dict[str, Any] = {
            key: value for key, value in raw.items() if value is not None
        }

    def has(self, name: str) -> bool:
        return name in self._values

    def _get(self, name: str) -> Any:
        return self._values.get(name, _MISSING)

    def optional_int(
        self, name: str, *, default: int | None = None, minimum: int = 0, maximum: int = 2**63 - 1
    ) -> int | None:
        value = self._get(name)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            text = _unquote(value)
            if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20:
                raise invalid_params(f"{name} must be an integer")
            value = int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_params(f"{name} must be an integer")
        if not minimum <= value <= maximum:
            raise invalid_params(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def required_int(self, name: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
        value = self.optional_int(name, minimum=minimum, maximum=maximum)
        if value is None:
            raise invalid_params(f"{name} is required")
        return value

    def flag(self, name: str, *, default: bool = False) -> bool:
        value = self._get(name)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            text = _unquote(value).lower()
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
        if isinstance(value, bool):
            return value
        raise invalid_params(f"{name} must be true or false")

    def optional_str(self, name: str, *, chars_max: int, default: str | None = None) -> str | None:
        value = self._get(name)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            raise invalid_params(f"{name} must be a string")
        value = _unquote(value)
        if len(value) > chars_max:
            raise invalid_params(f"{name} is longer than {chars_max} characters")
        return value

    def required_str(self, name: str, *, chars_max: int) -> str:
        value = self.optional_str(name, chars_max=chars_max)
        if value is None:
            raise invalid_params(f"{name} is required")
        return value

    def hash(self, name: str) -> bytes:
        text = self.required_str(name, chars_max=2 * HASH_BYTES + 2)
        return parse_hash(text, name=name)

    def tx(self, name: str = "tx") -> bytes:
        value = self._get(name)
        if value is _MISSING:
            raise invalid_params(f"{name} is required")
        return parse_tx_text(value, name=name)

    def dict_of_strings(self, name: str, *, entries_max: int, chars_max: int) -> dict[str, str]:
        value = self._get(name)
        if value is _MISSING:
            return {}
        if not isinstance(value, dict) or len(value) > entries_max:
            raise invalid_params(f"{name} must be an object of at most {entries_max} strings")
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(item, str | int) or isinstance(item, bool):
                raise invalid_params(f"{name}.{str(key)[:40]} must be a string")
            text = str(item)
            if len(key) > chars_max or len(text) > chars_max:
                raise invalid_params(f"{name} entries are limited to {chars_max} characters")
            result[key] = text
        return result

    def items(self, name: str, *, items_max: int) -> list[Any]:
        value = self._get(name)
        if value is _MISSING:
            raise invalid_params(f"{name} is required")
        if not isinstance(value, list):
            raise invalid_params(f"{name} must be an array")
        if not value:
            raise invalid_params(f"{name} must not be empty")
        if len(value) > items_max:
            raise invalid_params(f"{name} has {len(value)} items, max {items_max}")
        return value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def parse_hash(text: str, *, name: str = "hash") -> bytes:
    """32-byte hash from hex (any case, optional 0x)."""
    text = _unquote(text)
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if len(text) != 2 * HASH_BYTES:
        raise invalid_params(f"{name} must be {2 * HASH_BYTES} hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise invalid_params(f"{name} is not hex") from None


def parse_tx_text(value: Any, *, name: str = "tx") -> bytes:
    """Raw tx bytes from base64 (standard alphabet, padded) or "0x"-prefixed hex."""
    if not isinstance(value, str):
        raise invalid_params(f"{name} must be a base64 string")
    text = _unquote(value)
    if len(text) > _TX_TEXT_CHARS_MAX:
        raise invalid_params(f"{name} is larger than the {limits.tx_bytes_max}-byte tx limit")
    if text[:2] in ("0x", "0X"):
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError:
            raise invalid_params(f"{name} is not hex") from None
    else:
        try:
            # Strict mode refuses what b64decode(validate=True) refuses (characters outside
            # the alphabet, bad or misplaced padding) without its regex pass over the text.
            raw = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            raise invalid_params(f"{name} is not base64") from None
    if not raw:
        raise invalid_params(f"{name} is empty")
    if len(raw) > limits.tx_bytes_max:
        raise invalid_params(f"{name} is {len(raw)} bytes, max {limits.tx_bytes_max}")
    return raw
