"""parse_tx_text decodes base64 with binascii's strict mode instead of
`base64.b64decode(validate=True)` (which runs a regex over the text first). The two must
accept and refuse exactly the same strings, with the same bytes out."""

from __future__ import annotations

import base64
import binascii
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.rpc.jsonrpc import RpcFault
from node.rpc.params import parse_tx_text

ALPHABET = "AQg+/=x\n_-é"


def reference(text: str) -> bytes | None:
    """What the previous implementation returned (None: refused)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw or None  # an empty tx is refused too


def ours(text: str) -> bytes | None:
    try:
        return parse_tx_text(text)
    except RpcFault:
        return None


def test_every_short_string_matches_the_reference() -> None:
    for size in range(6):
        for chars in itertools.product(ALPHABET[:9], repeat=size):
            text = "".join(chars)
            assert ours(text) == reference(text), repr(text)


@given(st.text(alphabet=ALPHABET, max_size=40))
def test_random_strings_match_the_reference(text: str) -> None:
    assert ours(text) == reference(text)


@given(st.binary(max_size=300))
def test_valid_base64_round_trips(rest: bytes) -> None:
    raw = b"\x01" + rest  # a tx starts with version 1 (base64 "A..."), never "0x" (hex)
    assert parse_tx_text(base64.b64encode(raw).decode("ascii")) == raw


@pytest.mark.parametrize("text", ["QQ==QQ==", "=QUJD", "QUJD\n", "QU JD", "QUI", "QUJ-"])
def test_malformed_base64_is_an_invalid_params_fault(text: str) -> None:
    with pytest.raises(RpcFault) as caught:
        parse_tx_text(text)
    assert caught.value.data == "tx is not base64"
