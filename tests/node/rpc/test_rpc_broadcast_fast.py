"""broadcast_txs decodes its base64 texts with msgspec (all at once, in C) and falls back
to parse_tx_text item by item; the answer for every item must be exactly what
parse_tx_text alone gives: same bytes, same refusals (hex form, quoted form, padding,
empty, oversized, non-strings)."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from node.rpc.methods import _raw_txs, _tx_or_none
from protocol import limits

ALPHABET = 'AQgw0x+/=_"'


def reference(texts: list[Any]) -> list[bytes | None]:
    return [_tx_or_none(text) for text in texts]


def test_msgspec_accepts_a_subset_of_strict_base64_with_the_same_bytes() -> None:
    for size in range(7):
        for chars in itertools.product(ALPHABET[:9], repeat=size):
            text = "".join(chars)
            try:
                [raw] = msgspec.convert([text], list[bytes])
            except msgspec.ValidationError:
                continue
            assert raw == base64.b64decode(text, validate=True), repr(text)


@given(st.lists(st.text(alphabet=ALPHABET, max_size=16), max_size=6))
def test_lists_of_odd_texts_match_the_reference(texts: list[str]) -> None:
    assert _raw_txs(list(texts)) == reference(list(texts))


TX = b"\x01" + bytes(range(200))
SPECIAL: list[Any] = [
    base64.b64encode(TX).decode(),
    "0x" + TX.hex(),
    "0x01020304",  # valid base64 too, but the hex form wins
    "0X01020304",
    '"' + base64.b64encode(TX).decode() + '"',
    "",
    "AAAA",  # three zero bytes: no tx, but both paths must decode it alike
    base64.b64encode(bytes(limits.tx_bytes_max + 1)).decode(),
    base64.b64encode(bytes(limits.tx_bytes_max)).decode(),
    "QUJD=",  # over-padded: refused by msgspec, accepted by binascii
    7,
    None,
]


@given(st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=8))
def test_lists_mixing_forms_match_the_reference(texts: list[Any]) -> None:
    assert _raw_txs(texts) == reference(texts)


def test_plain_base64_list_takes_the_fast_path_and_matches() -> None:
    texts = [base64.b64encode(b"\x01" + bytes([i]) * 100).decode() for i in range(50)]
    assert msgspec.convert(texts, list[bytes])  # the fast path applies
    assert _raw_txs(texts) == reference(texts)
    assert all(raw is not None and raw[0] == 1 for raw in _raw_txs(texts))
