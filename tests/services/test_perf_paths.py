"""The fast paths of execution answer exactly what the slow paths would: canonical body
decoding and its cache, cached agency records, the hand-built writes digest."""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict

import msgspec
import pytest

from protocol.crypto import SigningKey
from protocol.results import TxResult
from services import agencies, apphash, bodies, notary
from services.app import SeoulApplication
from services.codes import Code
from services.genesis import Agency, ServicesGenesis
from services.testing import AppHarness, MemoryStateView
from tests.services.services_helpers import CHAIN_ID, CITY, doc, make_genesis, sign


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    tags: dict[str, str]


_DECODER = msgspec.msgpack.Decoder(_Body)


def _map(pairs: list[tuple[object, object]]) -> bytes:
    """A msgpack map in the given order, repeats allowed (msgspec cannot encode one)."""
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(
        msgspec.msgpack.encode(key) + msgspec.msgpack.encode(value) for key, value in pairs
    )


def test_msgspec_strict_decode_keeps_repeated_keys_so_the_walk_stays() -> None:
    repeated_field = _map([("name", "a"), ("name", "b"), ("tags", {})])
    assert _DECODER.decode(repeated_field).name == "b", "msgspec keeps the last"
    repeated_tag = _map([("name", "a"), ("tags", {})])[:-1] + _map([("k", "1"), ("k", "2")])
    assert _DECODER.decode(repeated_tag).tags == {"k": "2"}
    for raw in (repeated_field, repeated_tag):
        refused = bodies.decode_body(_DECODER, raw, detailed=False)
        assert refused == TxResult(code=Code.BODY_INVALID, log="body repeats a map key")


def test_canonical_and_non_canonical_bodies_decode_alike() -> None:
    canonical = msgspec.msgpack.encode(_Body(name="x", tags={"b": "1", "a": "2"}))
    # The same value with the name as str8 instead of fixstr: not canonical, no repeats.
    wide = _map([("name", "x"), ("tags", {"b": "1", "a": "2"})])
    wide = wide.replace(b"\xa1x", b"\xd9\x01x", 1)
    assert wide != canonical
    for raw in (canonical, wide):
        body = bodies.decode_body(_DECODER, raw, detailed=True)
        assert body == _Body(name="x", tags={"b": "1", "a": "2"})


def test_a_cached_body_mutated_by_a_caller_is_not_handed_out_again() -> None:
    raw = msgspec.msgpack.encode(_Body(name="cache-me", tags={"k": "v"}))
    first = bodies.decode_body(_DECODER, raw, detailed=True)  # admission remembers it
    assert isinstance(first, _Body)
    assert bodies.decode_body(_DECODER, bytes(bytearray(raw)), detailed=False) is first
    first.tags["k"] = "tampered"
    again = bodies.decode_body(_DECODER, raw, detailed=False)
    assert again == _Body(name="cache-me", tags={"k": "v"})
    assert again is not first


def test_execution_decodes_are_not_remembered_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = msgspec.msgpack.encode(_Body(name="executed-only", tags={}))
    first = bodies.decode_body(_DECODER, raw, detailed=False)
    assert bodies.decode_body(_DECODER, raw, detailed=False) is not first
    monkeypatch.setattr(bodies, "BODIES_DECODED_CACHED", 3)
    monkeypatch.setattr(bodies, "_decoded", OrderedDict())
    for index in range(5):
        raw = msgspec.msgpack.encode(_Body(name=f"bounded-{index}", tags={}))
        assert bodies.decode_body(_DECODER, raw, detailed=True) == _Body(
            name=f"bounded-{index}", tags={}
        )
    assert len(bodies._decoded) <= 3


def test_invalid_bodies_keep_their_codes_and_detailed_messages() -> None:
    invalid = msgspec.msgpack.encode({"name": 5, "tags": {}})
    malformed = b"\xc1"
    for detailed in (True, False):
        first = bodies.decode_body(_DECODER, invalid, detailed=detailed)
        assert isinstance(first, TxResult)
        assert first.code == Code.BODY_INVALID
        assert (": " in first.log) == detailed
        second = bodies.decode_body(_DECODER, malformed, detailed=detailed)
        assert isinstance(second, TxResult)
        assert second.code == Code.BODY_MALFORMED


def test_notary_bodies_from_the_client_helper_are_canonical() -> None:
    raw = notary.encode_anchor(doc("canonical"), "permit", {"z": "1", "a": "2"})
    decoder = msgspec.msgpack.Decoder(notary.AnchorBody)
    assert msgspec.msgpack.encode(decoder.decode(raw)) == raw


def _documented_writes_digest(writes: dict[bytes, bytes | None]) -> bytes:
    stream = b""
    for key in sorted(writes):
        value = writes[key]
        stream += struct.pack(">I", len(key)) + key
        if value is None:
            stream += b"\x00" + struct.pack(">I", 0)
        else:
            stream += b"\x01" + struct.pack(">I", len(value)) + value
    return hashlib.sha256(stream).digest()


@pytest.mark.parametrize("count", [0, 1, 1023, 1024, 1025, 3000])
def test_writes_digest_matches_the_documented_bytes_across_chunks(count: int) -> None:
    writes: dict[bytes, bytes | None] = {}
    for i in range(count):
        key = b"k/" + hashlib.sha256(b"%d" % i).digest()[: 1 + i % 31]
        writes[key] = None if i % 7 == 0 else bytes([i % 251]) * (i % 300)
    assert apphash.writes_digest(writes) == _documented_writes_digest(writes)


def test_role_checks_follow_a_changed_agency_record() -> None:
    key = SigningKey.from_secret(b"perf-paths-agency").public_key
    genesis = ServicesGenesis(
        chain_id="seoul-test", agencies=(Agency(name="Perf", public_key=key, roles=("notary",)),)
    )
    state = MemoryStateView(agencies.genesis_writes(genesis))
    assert agencies.has_role(state, key, "notary")
    assert not agencies.has_role(state, key, "vote_admin")
    changed = agencies.AgencyRecord(name="Perf", public_key=key, roles=["vote_admin"])
    state.commit({agencies.KEY_PREFIX + key: msgspec.msgpack.encode(changed)})
    assert not agencies.has_role(state, key, "notary")
    assert agencies.has_role(state, key, "vote_admin")
    record = agencies.agency_by_key(state, key)
    assert record == changed
    listed = agencies.agency_json(changed)["roles"]
    assert isinstance(listed, list)
    listed.append("mutated")
    assert agencies.agency_by_key(state, key) == changed, "JSON form is a copy"
    state.commit({agencies.KEY_PREFIX + key: None})
    assert not agencies.has_role(state, key, "vote_admin")


def test_anchored_records_store_metadata_sorted_as_a_sorted_copy_would() -> None:
    """The record encoder sorts metadata keys itself; the bytes are those of a record built
    with `dict(sorted(metadata.items()))` and encoded plainly, non-ASCII keys included."""
    chain = AppHarness(SeoulApplication(make_genesis()), chain_id=CHAIN_ID)
    metadata = {"z": "1", "é": "2", "中": "3", "😀": "4", "A": "5", "a b": "6", "\uffff": "7"}
    tx = sign(CITY, "notary.anchor", notary.encode_anchor(doc("sorted"), "deed", metadata))
    outcome = chain.run_block([tx], time_ms=7)
    stored = outcome.writes[notary.DOC_PREFIX + doc("sorted")]
    expected = notary.DocumentRecord(
        document_hash=doc("sorted"),
        issuer=CITY.public_key,
        agency="Seoul City",
        doc_type="deed",
        metadata=dict(sorted(metadata.items())),
        height=1,
        time_ms=7,
        tx_hash=tx.hash(),
        tx_index=0,
    )
    assert stored == msgspec.msgpack.encode(expected)
