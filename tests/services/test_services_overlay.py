"""The write overlay: reads see own writes first; scans merge in key order; a reference
model (a plain dict) must agree with any stack of overlays."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.overlay import Overlay
from services.testing import MemoryStateView


def test_get_prefers_overlay_writes_and_deletions() -> None:
    base = MemoryStateView({b"a": b"1", b"b": b"2"})
    overlay = Overlay(base)
    overlay.put(b"a", b"10")
    overlay.delete(b"b")
    overlay.put(b"c", b"3")
    assert overlay.get(b"a") == b"10"
    assert overlay.get(b"b") is None
    assert overlay.get(b"c") == b"3"
    assert base.get(b"a") == b"1", "the base must not change until the writes are committed"
    assert dict(overlay.writes) == {b"a": b"10", b"b": None, b"c": b"3"}


def test_scan_merges_in_order_and_hides_deleted_keys() -> None:
    base = MemoryStateView({b"p/1": b"a", b"p/3": b"c", b"p/5": b"e", b"q/1": b"x"})
    overlay = Overlay(base)
    overlay.put(b"p/2", b"b")
    overlay.delete(b"p/3")
    overlay.put(b"p/5", b"E")
    overlay.put(b"q/0", b"y")
    assert list(overlay.scan(b"p/", limit=10)) == [(b"p/1", b"a"), (b"p/2", b"b"), (b"p/5", b"E")]
    assert list(overlay.scan(b"p/", start_after=b"p/1", limit=1)) == [(b"p/2", b"b")]
    assert list(overlay.scan(b"p/", limit=0)) == []


def test_scan_pages_past_many_deleted_parent_keys() -> None:
    """More deletions than one parent page: the scan must keep paging, not stop short."""
    keys = [b"k/%04d" % i for i in range(300)]
    base = MemoryStateView(dict.fromkeys(keys, b"v"))
    overlay = Overlay(base)
    for key in keys[:250]:
        overlay.delete(key)
    assert [key for key, _ in overlay.scan(b"k/", limit=100)] == keys[250:]


def test_child_overlay_applies_into_parent_only_when_asked() -> None:
    base = MemoryStateView()
    block = Overlay(base)
    failed = Overlay(block)
    failed.put(b"x", b"1")
    succeeded = Overlay(block)
    succeeded.put(b"y", b"2")
    block.apply(succeeded.writes)
    assert block.get(b"x") is None
    assert block.get(b"y") == b"2"


_keys = st.binary(min_size=1, max_size=3).map(lambda tail: b"p" + tail)
_ops = st.lists(st.tuples(_keys, st.one_of(st.none(), st.binary(max_size=2))), max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    base_rows=st.dictionaries(_keys, st.binary(max_size=2), max_size=40),
    first=_ops,
    second=_ops,
    start_after=st.one_of(st.none(), _keys),
    limit=st.integers(min_value=0, max_value=50),
)
def test_stacked_overlays_agree_with_a_dict_model(
    base_rows: dict[bytes, bytes],
    first: list[tuple[bytes, bytes | None]],
    second: list[tuple[bytes, bytes | None]],
    start_after: bytes | None,
    limit: int,
) -> None:
    model = dict(base_rows)
    block = Overlay(MemoryStateView(base_rows))
    tx = Overlay(block)
    for target, ops in ((block, first), (tx, second)):
        for key, value in ops:
            if value is None:
                target.delete(key)
                model.pop(key, None)
            else:
                target.put(key, value)
                model[key] = value
    expected = sorted(
        (key, value) for key, value in model.items() if start_after is None or key > start_after
    )[:limit]
    assert list(tx.scan(b"p", start_after=start_after, limit=limit)) == expected
    for key in [*model, b"p-missing"]:
        assert tx.get(key) == model.get(key)
