"""genesis.json: the one file every node of a chain shares, and the root of trust for proofs.

It fixes the chain id, the consensus kind and its chain-wide parameters, the validator set
(whose keys check every seal), the agencies allowed to sign service records and the
governance council. Loading is strict: an unknown key, a wrong type or a bad value raises
`GenesisError` naming the file and the field ("genesis.json: validators[2].public_key: not 64
hex characters"), because a node that guessed what a genesis meant could fork from its peers.

`genesis_hash` is SHA-256 over the canonical JSON of the *normalised* genesis (defaults
filled in, hex lowercased; sorted keys, compact separators, UTF-8), so two files that mean the
same chain have the same hash. docs/CONFIG.md §genesis.json documents every field.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from protocol import limits as protocol_limits
from protocol.crypto import PUBLIC_KEY_BYTES, sha256
from protocol.tx import chain_id_invalid
from protocol.validators import ValidatorSet
from services import agencies as services_agencies
from services import limits as services_limits
from services.genesis import Agency, ServicesGenesis

log = logging.getLogger(__name__)

CONSENSUS_KINDS = ("solo", "pbft", "raft")
GENESIS_FILE_BYTES_MAX = 4 * 1024 * 1024
NAME_CHARS_MAX = 64
ROLE_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")
AGENCIES_MAX = services_limits.agencies_max
ROLES_PER_AGENCY_MAX = services_limits.agency_roles_max
_HEX_CHARS = frozenset(string.hexdigits)


class GenesisError(ValueError):
    """genesis.json is missing, unreadable or invalid; the message names file and field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftSettings:
    """Raft features that must be the same on every node (timeouts are local: config.toml)."""

    pre_vote: bool = True  # a rejoining node cannot disrupt a healthy leader (Raft §9.6)
    check_quorum: bool = True  # a leader that lost its quorum steps down
    max_entries_per_append: int = 64  # blocks in one AppendEntries


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsensusParams:
    kind: str
    pipeline_depth: int = 2  # heights between a block and the header attesting its app hash
    checkpoint_interval: int = 16  # PBFT stable checkpoint every K heights
    watermark_window: int = 64  # PBFT log window L (a multiple of K)
    raft: RaftSettings = field(default_factory=RaftSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class GenesisValidator:
    name: str
    public_key: bytes
    p2p_address: str  # "host:port"
    rpc_address: str  # "host:port"


@dataclass(frozen=True, slots=True, kw_only=True)
class GenesisAgency:
    name: str
    public_key: bytes
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Council:
    public_keys: tuple[bytes, ...] = ()
    threshold: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    consensus: ConsensusParams
    validators: tuple[GenesisValidator, ...]
    agencies: tuple[GenesisAgency, ...] = ()
    council: Council = field(default_factory=Council)

    def validator_set(self) -> ValidatorSet:
        return ValidatorSet(tuple(validator.public_key for validator in self.validators))

    def services_genesis(self) -> ServicesGenesis:
        agencies = tuple(
            Agency(name=agency.name, public_key=agency.public_key, roles=agency.roles)
            for agency in self.agencies
        )
        return ServicesGenesis(
            chain_id=self.chain_id,
            agencies=agencies,
            council=self.council.public_keys,
            council_threshold=self.council.threshold,
        )

    def to_dict(self) -> dict[str, Any]:
        """The normalised JSON form: what is written to disk and what is hashed."""
        raft = self.consensus.raft
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "consensus": {
                "kind": self.consensus.kind,
                "pipeline_depth": self.consensus.pipeline_depth,
                "checkpoint_interval": self.consensus.checkpoint_interval,
                "watermark_window": self.consensus.watermark_window,
                "raft": {
                    "pre_vote": raft.pre_vote,
                    "check_quorum": raft.check_quorum,
                    "max_entries_per_append": raft.max_entries_per_append,
                },
            },
            "validators": [
                {
                    "name": v.name,
                    "public_key": v.public_key.hex(),
                    "p2p_address": v.p2p_address,
                    "rpc_address": v.rpc_address,
                }
                for v in self.validators
            ],
            "agencies": [
                {"name": a.name, "public_key": a.public_key.hex(), "roles": list(a.roles)}
                for a in self.agencies
            ],
            "council": {
                "public_keys": [key.hex() for key in self.council.public_keys],
                "threshold": self.council.threshold,
            },
        }

    def canonical_json(self) -> bytes:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    def genesis_hash(self) -> bytes:
        return sha256(self.canonical_json())

    def validator_index(self, public_key: bytes) -> int | None:
        return self.validator_set().index_of(public_key)


def load_genesis(path: Path) -> Genesis:
    """Read and validate a genesis file; GenesisError (naming file and field) on any problem."""
    name = path.name
    try:
        raw = _read_bounded(path)
    except OSError as error:
        raise GenesisError(f"{path}: cannot read genesis: {error.strerror or error}") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise GenesisError(f"{name}: not UTF-8") from None
    except json.JSONDecodeError as error:
        raise GenesisError(
            f"{name}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    return parse_genesis(document, source=name)


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as handle:
        raw = handle.read(GENESIS_FILE_BYTES_MAX + 1)
    if len(raw) > GENESIS_FILE_BYTES_MAX:
        raise GenesisError(f"{path.name}: larger than {GENESIS_FILE_BYTES_MAX} bytes")
    return raw


def write_genesis(path: Path, genesis: Genesis) -> None:
    """Write the normalised form, indented for people; the hash does not depend on layout."""
    text = json.dumps(genesis.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def parse_genesis(document: object, *, source: str = "genesis.json") -> Genesis:
    reader = _Fields(source)
    top = reader.table(document, "", _TOP_KEYS)
    chain_id = reader.string(top, "chain_id")
    if (reason := chain_id_invalid(chain_id)) is not None:
        reader.fail("chain_id", reason)
    time_ms = reader.integer(top, "genesis_time_ms", required=True, minimum=0)
    consensus = _parse_consensus(reader, top.get("consensus"))
    validators = _parse_validators(reader, top.get("validators"), consensus.kind)
    agencies = _parse_agencies(reader, top.get("agencies", []))
    council = _parse_council(reader, top.get("council", {}))
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=time_ms,
        consensus=consensus,
        validators=validators,
        agencies=agencies,
        council=council,
    )
    # The services layer has the last word on what a chain's agencies may look like.
    if (reason := services_agencies.genesis_invalid(genesis.services_genesis())) is not None:
        reader.fail("agencies", reason)
    return genesis


_TOP_KEYS = ("chain_id", "genesis_time_ms", "consensus", "validators", "agencies", "council")
_CONSENSUS_KEYS = ("kind", "pipeline_depth", "checkpoint_interval", "watermark_window", "raft")
_RAFT_KEYS = ("pre_vote", "check_quorum", "max_entries_per_append")


def _parse_consensus(reader: _Fields, value: object) -> ConsensusParams:
    if value is None:
        reader.fail("consensus", "missing")
    table = reader.table(value, "consensus", _CONSENSUS_KEYS)
    kind = reader.string(table, "kind", prefix="consensus")
    if kind not in CONSENSUS_KINDS:
        reader.fail("consensus.kind", f"must be one of {', '.join(CONSENSUS_KINDS)}")
    depth = reader.integer(table, "pipeline_depth", default=2, minimum=1, prefix="consensus")
    interval = reader.integer(
        table, "checkpoint_interval", default=16, minimum=1, prefix="consensus"
    )
    window = reader.integer(table, "watermark_window", default=64, minimum=2, prefix="consensus")
    if window < 2 * interval or window % interval:
        reader.fail(
            "consensus.watermark_window",
            f"must be a multiple of checkpoint_interval ({interval}) and at least twice it",
        )
    if depth > interval:
        reader.fail("consensus.pipeline_depth", f"must not exceed checkpoint_interval {interval}")
    raft_table = reader.table(table.get("raft", {}), "consensus.raft", _RAFT_KEYS)
    raft = RaftSettings(
        pre_vote=reader.boolean(raft_table, "pre_vote", default=True, prefix="consensus.raft"),
        check_quorum=reader.boolean(
            raft_table, "check_quorum", default=True, prefix="consensus.raft"
        ),
        max_entries_per_append=reader.integer(
            raft_table, "max_entries_per_append", default=64, minimum=1, prefix="consensus.raft"
        ),
    )
    return ConsensusParams(
        kind=kind,
        pipeline_depth=depth,
        checkpoint_interval=interval,
        watermark_window=window,
        raft=raft,
    )


_VALIDATOR_KEYS = ("name", "public_key", "p2p_address", "rpc_address")


def _parse_validators(reader: _Fields, value: object, kind: str) -> tuple[GenesisValidator, ...]:
    items = reader.array(value, "validators", maximum=protocol_limits.validators_max)
    if not items:
        reader.fail("validators", "at least one validator is required")
    if kind == "solo" and len(items) != 1:
        reader.fail(
            "validators", f"consensus kind solo needs exactly 1 validator, got {len(items)}"
        )
    validators = []
    for index, item in enumerate(items):
        where = f"validators[{index}]"
        table = reader.table(item, where, _VALIDATOR_KEYS)
        validators.append(
            GenesisValidator(
                name=reader.name(table, "name", prefix=where),
                public_key=reader.public_key(table, "public_key", prefix=where),
                p2p_address=reader.address(table, "p2p_address", prefix=where),
                rpc_address=reader.address(table, "rpc_address", prefix=where),
            )
        )
    reader.unique("validators", "public_key", [v.public_key for v in validators])
    reader.unique("validators", "name", [v.name for v in validators])
    reader.unique("validators", "p2p_address", [v.p2p_address for v in validators])
    return tuple(validators)


def _parse_agencies(reader: _Fields, value: object) -> tuple[GenesisAgency, ...]:
    items = reader.array(value, "agencies", maximum=AGENCIES_MAX)
    agencies = []
    for index, item in enumerate(items):
        where = f"agencies[{index}]"
        table = reader.table(item, where, ("name", "public_key", "roles"))
        roles_raw = reader.array(
            table.get("roles", []), f"{where}.roles", maximum=ROLES_PER_AGENCY_MAX
        )
        roles = []
        for role_index, role in enumerate(roles_raw):
            role_where = f"{where}.roles[{role_index}]"
            if not isinstance(role, str) or not role or not set(role) <= ROLE_CHARS:
                reader.fail(role_where, "must be a non-empty string of a-z, 0-9 and '_'")
            roles.append(role)
        if len(set(roles)) != len(roles):
            reader.fail(f"{where}.roles", "duplicate role")
        agencies.append(
            GenesisAgency(
                name=reader.name(table, "name", prefix=where),
                public_key=reader.public_key(table, "public_key", prefix=where),
                roles=tuple(roles),
            )
        )
    reader.unique("agencies", "public_key", [a.public_key for a in agencies])
    reader.unique("agencies", "name", [a.name for a in agencies])
    return tuple(agencies)


def _parse_council(reader: _Fields, value: object) -> Council:
    table = reader.table(value, "council", ("public_keys", "threshold"))
    items = reader.array(table.get("public_keys", []), "council.public_keys", maximum=AGENCIES_MAX)
    keys = []
    for index, item in enumerate(items):
        keys.append(reader.hex_key(item, f"council.public_keys[{index}]"))
    if len(set(keys)) != len(keys):
        reader.fail("council.public_keys", "duplicate public key")
    threshold = reader.integer(table, "threshold", default=0, minimum=0, prefix="council")
    if keys and not 1 <= threshold <= len(keys):
        reader.fail("council.threshold", f"must be between 1 and {len(keys)}")
    if not keys and threshold:
        reader.fail("council.threshold", "must be 0 when the council has no keys")
    return Council(public_keys=tuple(keys), threshold=threshold)


class _Fields:
    """Strict typed access to a parsed JSON document; every failure names source and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> NoReturn:
        prefix = f"{self.source}: {where}" if where else self.source
        raise GenesisError(f"{prefix}: {reason}")

    def table(self, value: object, where: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, "must be a JSON object")
        for key in value:
            if key not in keys:
                self.fail(_join(where, str(key)), f"unknown key (known: {', '.join(keys)})")
        return value

    def array(self, value: object, where: str, *, maximum: int) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, "must be a JSON array")
        if len(value) > maximum:
            self.fail(where, f"{len(value)} entries, at most {maximum}")
        return value

    def string(self, table: Mapping[str, Any], key: str, *, prefix: str = "") -> str:
        where = _join(prefix, key)
        if key not in table:
            self.fail(where, "missing")
        value = table[key]
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {_type_name(value)}")
        return value

    def name(self, table: Mapping[str, Any], key: str, *, prefix: str) -> str:
        value = self.string(table, key, prefix=prefix)
        if not 1 <= len(value) <= NAME_CHARS_MAX or not value.isprintable():
            self.fail(_join(prefix, key), f"must be 1..{NAME_CHARS_MAX} printable characters")
        return value

    def integer(
        self,
        table: Mapping[str, Any],
        key: str,
        *,
        required: bool = False,
        default: int = 0,
        minimum: int,
        prefix: str = "",
    ) -> int:
        where = _join(prefix, key)
        if key not in table:
            if required:
                self.fail(where, "missing")
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be an integer, got {_type_name(value)}")
        if not minimum <= value < (1 << 63):
            self.fail(where, f"must be an integer >= {minimum}, got {value}")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, *, default: bool, prefix: str) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.fail(_join(prefix, key), f"must be true or false, got {_type_name(value)}")
        return value

    def public_key(self, table: Mapping[str, Any], key: str, *, prefix: str) -> bytes:
        where = _join(prefix, key)
        if key not in table:
            self.fail(where, "missing")
        return self.hex_key(table[key], where)

    def hex_key(self, value: object, where: str) -> bytes:
        if not isinstance(value, str):
            self.fail(where, f"must be a hex string, got {_type_name(value)}")
        text = value
        if len(text) != 2 * PUBLIC_KEY_BYTES or not set(text) <= _HEX_CHARS:
            self.fail(where, f"not {2 * PUBLIC_KEY_BYTES} hex characters")
        return bytes.fromhex(text)

    def address(self, table: Mapping[str, Any], key: str, *, prefix: str) -> str:
        value = self.string(table, key, prefix=prefix)
        reason = address_invalid(value)
        if reason is not None:
            self.fail(_join(prefix, key), reason)
        return value

    def unique(self, where: str, key: str, values: list[Any]) -> None:
        seen: dict[Any, int] = {}
        for index, value in enumerate(values):
            if value in seen:
                self.fail(f"{where}[{index}].{key}", f"duplicate of {where}[{seen[value]}]")
            seen[value] = index


def address_invalid(value: str) -> str | None:
    """None if `value` is "host:port" with a port in 1..65535; else the reason."""
    host, separator, port = value.rpartition(":")
    if not separator or not host:
        return f"{value!r} is not host:port"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{value!r}: port must be 1..65535"
    if any(char.isspace() for char in host) or "/" in host:
        return f"{value!r}: bad host"
    return None


def split_address(value: str) -> tuple[str, int]:
    """("host", port) from a checked "host:port"; IPv6 hosts may be written [::1]:port."""
    assert address_invalid(value) is None, value
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}
    return names.get(type(value), "null" if value is None else type(value).__name__)
