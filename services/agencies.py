"""The agency registry: who may sign records, and in which roles.

Genesis lists the agencies (name, Ed25519 key, roles). They are written to state at genesis
so that every authorisation is a state read, the same path a later governance service
(issue 7) will use to grant and withdraw roles by tx. Keys:

    agency/key/<32-byte public key>  -> msgpack AgencyRecord
    agency/name/<UTF-8 name>         -> 32-byte public key

The registry is a Service with no tx kinds and one query path, `agency/list`.
"""

from __future__ import annotations

import functools
import logging
import re
import string
from collections.abc import Mapping

import msgspec

from protocol.crypto import PUBLIC_KEY_BYTES
from services import limits
from services.genesis import ServicesGenesis
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext

log = logging.getLogger(__name__)

KEY_PREFIX = b"agency/key/"
NAME_PREFIX = b"agency/name/"
_ROLE_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AgencyRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    public_key: bytes
    roles: list[str]  # sorted, unique


_RECORD_DECODER = msgspec.msgpack.Decoder(AgencyRecord)
_ENCODER = msgspec.msgpack.Encoder()
# Decoded agency records remembered by their stored bytes. Safe: decoding is a pure function
# of the bytes, and a record changed by governance has other bytes, so it misses. Every tx
# reads its signer's record once or twice (role check, issuer name), and there are at most
# `limits.agencies_max` live records; old versions age out. Bounded in bytes too: a record
# is at most ~1 KiB (name, key, roles), so 4,096 of them stay below ~4 MiB. Callers must not
# mutate a returned record's `roles` list (the record is frozen; nothing here mutates it).
RECORDS_DECODED_CACHED = 4_096


def genesis_invalid(genesis: ServicesGenesis) -> str | None:
    """Why this genesis cannot start a chain, or None. Checked once, at node start."""
    if not 1 <= len(genesis.agencies) <= limits.agencies_max:
        return f"genesis must list 1..{limits.agencies_max} agencies"
    names = [agency.name for agency in genesis.agencies]
    keys = [agency.public_key for agency in genesis.agencies]
    if len(set(names)) != len(names):
        return "agency names must be unique"
    if len(set(keys)) != len(keys):
        return "agency public keys must be unique"
    for agency in genesis.agencies:
        if not 1 <= len(agency.name) <= limits.agency_name_chars_max:
            return f"agency name must be 1..{limits.agency_name_chars_max} characters"
        if _CONTROL.search(agency.name):
            return f"agency name {agency.name!r} contains control characters"
        if len(agency.public_key) != PUBLIC_KEY_BYTES:
            return f"agency {agency.name!r} public key must be {PUBLIC_KEY_BYTES} bytes"
        if (reason := _roles_invalid(agency.roles)) is not None:
            return f"agency {agency.name!r}: {reason}"
    return None


def _roles_invalid(roles: tuple[str, ...]) -> str | None:
    if len(roles) > limits.agency_roles_max:
        return f"at most {limits.agency_roles_max} roles"
    if len(set(roles)) != len(roles):
        return "roles must be unique"
    for role in roles:
        if not 1 <= len(role) <= limits.role_chars_max or not set(role) <= _ROLE_CHARS:
            return f"role {role!r} must be 1..{limits.role_chars_max} of a-z, 0-9, '_'"
    return None


def genesis_writes(genesis: ServicesGenesis) -> dict[bytes, bytes | None]:
    writes: dict[bytes, bytes | None] = {}
    for agency in genesis.agencies:
        record = AgencyRecord(
            name=agency.name, public_key=agency.public_key, roles=sorted(agency.roles)
        )
        writes[KEY_PREFIX + agency.public_key] = _ENCODER.encode(record)
        writes[NAME_PREFIX + agency.name.encode("utf-8")] = agency.public_key
    return writes


def agency_by_key(state: StateView, public_key: bytes) -> AgencyRecord | None:
    raw = state.get(KEY_PREFIX + public_key)
    if raw is None:
        return None
    return _decode_record(raw)


@functools.lru_cache(maxsize=RECORDS_DECODED_CACHED)
def _decode_record(raw: bytes) -> AgencyRecord:
    return _RECORD_DECODER.decode(raw)  # our own bytes: a failure here is corruption


@functools.lru_cache(maxsize=RECORDS_DECODED_CACHED)
def _roles_of(raw: bytes) -> frozenset[str]:
    return frozenset(_decode_record(raw).roles)


def agency_by_name(state: StateView, name: str) -> AgencyRecord | None:
    public_key = state.get(NAME_PREFIX + name.encode("utf-8"))
    if public_key is None:
        return None
    record = agency_by_key(state, public_key)
    assert record is not None, f"agency name {name!r} points at a missing key record"
    return record


def resolve_agency(state: StateView, name_or_key: str) -> AgencyRecord | None:
    """An agency by its name, or by its public key as 64 hex characters."""
    if len(name_or_key) == 2 * PUBLIC_KEY_BYTES:
        try:
            public_key = bytes.fromhex(name_or_key)
        except ValueError:
            pass
        else:
            record = agency_by_key(state, public_key)
            if record is not None:
                return record
    return agency_by_name(state, name_or_key)


def is_issuing_agency(state: StateView, signer: bytes, *, issuer: bytes, agency_name: str) -> bool:
    """The signer is the key that issued a record, or the current key of the same agency:
    after a governance key rotation an agency keeps what it issued (notary, credentials)."""
    if issuer == signer:
        return True
    agency = agency_by_key(state, signer)
    return agency is not None and agency.name == agency_name


def has_role(state: StateView, public_key: bytes, role: str) -> bool:
    raw = state.get(KEY_PREFIX + public_key)
    return raw is not None and role in _roles_of(raw)


def agency_json(record: AgencyRecord) -> dict[str, object]:
    return {"name": record.name, "public_key": record.public_key.hex(), "roles": list(record.roles)}


class AgencyRegistry:
    """Serves `agency/list` and writes the genesis agencies; accepts no txs."""

    name = "agency"
    kinds: Mapping[str, KindSpec] = {}
    query_paths: tuple[str, ...] = ("agency/list",)

    def __init__(self, genesis: ServicesGenesis) -> None:
        self._genesis = genesis

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return genesis_writes(self._genesis)

    def deliver(self, ctx: TxContext, body: object, state: Overlay) -> Delivery:
        raise AssertionError(f"agency registry has no tx kinds, got {ctx.kind}")

    def query(self, path: str, params: Mapping[str, str], state: StateView) -> QueryResult:
        if path != "agency/list":
            raise QueryError(f"unknown path {path!r}")
        if params:
            raise QueryError(f"agency/list takes no params, got {sorted(params)}")
        agencies = [
            agency_json(record)
            for _, public_key in state.scan(NAME_PREFIX, limit=limits.agencies_max)
            if (record := agency_by_key(state, public_key)) is not None
        ]
        return QueryResult(found=True, value={"agencies": agencies})
