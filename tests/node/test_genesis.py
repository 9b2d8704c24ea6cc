"""genesis.json: the happy path round-trips, and every bad field is named in the error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from node.genesis import Genesis, GenesisError, load_genesis, parse_genesis, write_genesis
from protocol.crypto import SigningKey


def _key(name: str) -> str:
    return SigningKey.from_secret(name.encode()).public_key.hex()


def genesis_document(validator_count: int = 4, kind: str = "pbft") -> dict[str, Any]:
    return {
        "chain_id": "seoul-test",
        "genesis_time_ms": 1_700_000_000_000,
        "consensus": {"kind": kind},
        "validators": [
            {
                "name": f"node{i}",
                "public_key": _key(f"validator{i}"),
                "p2p_address": f"127.0.0.1:{27000 + 10 * i}",
                "rpc_address": f"127.0.0.1:{27001 + 10 * i}",
            }
            for i in range(validator_count)
        ],
        "agencies": [{"name": "서울시", "public_key": _key("agency0"), "roles": ["notary"]}],
        "council": {"public_keys": [_key("c0"), _key("c1")], "threshold": 2},
    }


def test_valid_genesis_parses_with_defaults_and_converts() -> None:
    genesis = parse_genesis(genesis_document())
    assert genesis.consensus.pipeline_depth == 2
    assert genesis.consensus.checkpoint_interval == 16
    assert genesis.consensus.watermark_window == 64
    assert genesis.consensus.raft.pre_vote is True
    validators = genesis.validator_set()
    assert validators.size == 4
    assert validators.public_keys[2] == bytes.fromhex(_key("validator2"))
    services = genesis.services_genesis()
    assert services.chain_id == "seoul-test"
    assert services.agencies[0].roles == ("notary",)
    assert services.council_threshold == 2
    assert len(services.council) == 2


def test_hash_ignores_layout_and_defaults_but_not_content(tmp_path: Path) -> None:
    document = genesis_document()
    explicit = copy.deepcopy(document)
    explicit["consensus"].update(pipeline_depth=2, checkpoint_interval=16, watermark_window=64)
    explicit["validators"][0]["public_key"] = explicit["validators"][0]["public_key"].upper()
    assert parse_genesis(document).genesis_hash() == parse_genesis(explicit).genesis_hash()
    changed = copy.deepcopy(document)
    changed["genesis_time_ms"] += 1
    assert parse_genesis(document).genesis_hash() != parse_genesis(changed).genesis_hash()


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    genesis = parse_genesis(genesis_document(kind="raft"))
    path = tmp_path / "genesis.json"
    write_genesis(path, genesis)
    loaded = load_genesis(path)
    assert loaded == genesis
    assert loaded.genesis_hash() == genesis.genesis_hash()
    assert json.loads(loaded.canonical_json()) == genesis.to_dict()


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    document = genesis_document()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["chain_id"], "Bad Chain", "genesis.json: chain_id: chain id may use only"),
        (["chain_id"], _DELETE, "genesis.json: chain_id: missing"),
        (["genesis_time_ms"], -1, "genesis.json: genesis_time_ms: must be an integer >= 0"),
        (["genesis_time_ms"], True, "genesis_time_ms: must be an integer, got boolean"),
        (["consensus"], _DELETE, "genesis.json: consensus: missing"),
        (["consensus", "kind"], "paxos", "consensus.kind: must be one of solo, pbft, raft"),
        (["consensus", "pipeline_depth"], 0, "consensus.pipeline_depth: must be an integer >= 1"),
        (["consensus", "watermark_window"], 40, "consensus.watermark_window: must be a multiple"),
        (["consensus", "raft"], {"pre_vote": 1}, "consensus.raft.pre_vote: must be true or false"),
        (["consensus", "extra"], 1, "genesis.json: consensus.extra: unknown key"),
        (["surprise"], 1, "genesis.json: surprise: unknown key"),
        (["validators"], [], "genesis.json: validators: at least one validator is required"),
        (["validators"], {}, "genesis.json: validators: must be a JSON array"),
        (
            ["validators", 2, "public_key"],
            "abcd",
            "genesis.json: validators[2].public_key: not 64 hex characters",
        ),
        (
            ["validators", 1, "public_key"],
            _key("validator0"),
            "validators[1].public_key: duplicate",
        ),
        (["validators", 3, "p2p_address"], "localhost", "validators[3].p2p_address: 'localhost'"),
        (["validators", 0, "rpc_address"], "h:70000", "validators[0].rpc_address: 'h:70000': port"),
        (["validators", 0, "name"], "", "validators[0].name: must be 1..64 printable"),
        (["validators", 0, "weight"], 5, "validators[0].weight: unknown key"),
        (["agencies", 0, "roles"], ["Notary!"], "agencies[0].roles[0]: must be a non-empty"),
        (["agencies", 0, "public_key"], 7, "agencies[0].public_key: must be a hex string"),
        (["agencies"], [], "genesis.json: agencies: genesis must list 1..256 agencies"),
        (["agencies", 0, "roles"], ["x" * 33], "genesis.json: agencies: agency '서울시': role"),
        (["council", "threshold"], 3, "genesis.json: council.threshold: must be between 1 and 2"),
        (["council", "public_keys", 1], "zz", "council.public_keys[1]: not 64 hex characters"),
    ],
)
def test_every_bad_field_is_named(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(GenesisError) as caught:
        parse_genesis(_with(path, value))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_solo_requires_exactly_one_validator() -> None:
    with pytest.raises(GenesisError, match="solo needs exactly 1 validator, got 4"):
        parse_genesis(genesis_document(kind="solo"))
    assert parse_genesis(genesis_document(validator_count=1, kind="solo")).validator_set().size == 1


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(GenesisError, match=r"genesis\.json: must be a JSON object"):
        parse_genesis([1, 2])


def test_missing_file_and_bad_json_are_clear(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="cannot read genesis: No such file"):
        load_genesis(tmp_path / "genesis.json")
    bad = tmp_path / "genesis.json"
    bad.write_text('{"chain_id": ', encoding="utf-8")
    with pytest.raises(GenesisError, match=r"genesis.json: not valid JSON: .*line 1"):
        load_genesis(bad)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(GenesisError, match=r"genesis\.json: not UTF-8"):
        load_genesis(bad)


def test_genesis_is_frozen() -> None:
    genesis: Genesis = parse_genesis(genesis_document())
    with pytest.raises(AttributeError):
        genesis.chain_id = "other"  # type: ignore[misc]
