"""Repeated map keys are refused: msgspec keeps the last, other libraries may keep the
first, and a body must mean one thing to every reader."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from services.bodies import has_repeated_key

_encode = msgspec.msgpack.encode


def _map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A msgpack map from already-encoded keys and values, in the given order."""
    count = len(pairs)
    header = bytes([0x80 | count]) if count < 16 else b"\xde" + count.to_bytes(2, "big")
    return header + b"".join(key + value for key, value in pairs)


def test_repeated_keys_found_at_top_level_nested_and_inside_arrays() -> None:
    one, two = _encode(1), _encode(2)
    assert not has_repeated_key(_map([(_encode("a"), one), (_encode("b"), two)]))
    assert has_repeated_key(_map([(_encode("a"), one), (_encode("a"), two)]))
    inner = _map([(_encode("k"), one), (_encode("k"), two)])
    assert has_repeated_key(_map([(_encode("m"), inner)]))
    assert has_repeated_key(b"\x91" + inner)
    assert not has_repeated_key(_encode([1, "x", {"k": 1}]))


def test_map16_header_is_counted() -> None:
    pairs = [(_encode(f"k{i}"), _encode(i)) for i in range(20)]
    assert not has_repeated_key(_map(pairs))
    assert has_repeated_key(_map([*pairs[:19], pairs[0]]))


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=20),
)
def test_agrees_with_counting_keys(keys: list[str]) -> None:
    encoded = _map([(_encode(key), _encode(index)) for index, key in enumerate(keys)])
    assert has_repeated_key(encoded) == (len(set(keys)) != len(keys))
