"""config.toml: defaults, round trip, path resolution, and errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from node.config import (
    Config,
    ConfigError,
    load_config,
    parse_config,
    peer_invalid,
    write_config,
)


def test_defaults_are_documented_values(tmp_path: Path) -> None:
    config = parse_config({}, home=tmp_path)
    assert config.rpc.listen_address == "127.0.0.1:26657"
    assert config.rpc.cors_allowed_origins == []
    assert config.consensus.create_empty_blocks is False
    assert config.mempool.max_txs == 20_000
    assert config.log.level == "info"
    assert config.db_path == tmp_path.resolve() / "data" / "chain.db"
    assert config.key_path == tmp_path.resolve() / "node_key.json"


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    config = Config(home=tmp_path)
    config.node.moniker = "gangnam"
    config.p2p.persistent_peers = ["ab" * 32 + "@127.0.0.1:27000"]
    config.rpc.commit_timeout_s = 2.5
    config.storage.db_path = "/var/lib/seoulchain/db"
    write_config(tmp_path, config)
    loaded = load_config(tmp_path)
    assert loaded == config
    assert loaded.db_path == Path("/var/lib/seoulchain/db")
    with pytest.raises(ConfigError, match="already exists"):
        write_config(tmp_path, config)


def test_int_is_accepted_for_a_float_key(tmp_path: Path) -> None:
    config = parse_config({"rpc": {"commit_timeout_s": 3}}, home=tmp_path)
    assert config.rpc.commit_timeout_s == 3.0
    assert isinstance(config.rpc.commit_timeout_s, float)


def test_rpc_url_uses_loopback_for_wildcard_listen(tmp_path: Path) -> None:
    config = parse_config({"rpc": {"listen_address": "0.0.0.0:3000"}}, home=tmp_path)
    assert config.rpc_url() == "http://127.0.0.1:3000"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rcp": {}}, "config.toml: rcp: unknown section"),
        ({"rpc": {"max_bodybytes": 1}}, "config.toml: rpc.max_bodybytes: unknown key"),
        ({"rpc": 5}, "config.toml: rpc: must be a table"),
        ({"mempool": {"max_txs": "many"}}, "config.toml: mempool.max_txs: must be an integer"),
        ({"mempool": {"max_txs": True}}, "mempool.max_txs: must be an integer, got bool"),
        ({"mempool": {"max_txs": 0}}, "mempool.max_txs: must be between 1 and"),
        ({"metrics": {"enabled": "yes"}}, "metrics.enabled: must be true or false"),
        ({"rpc": {"cors_allowed_origins": [1]}}, "rpc.cors_allowed_origins: must be a list"),
        ({"rpc": {"listen_address": "nowhere"}}, "rpc.listen_address: 'nowhere' is not host"),
        ({"p2p": {"persistent_peers": ["1.2.3.4:5"]}}, "p2p.persistent_peers[0]:"),
        ({"p2p": {"allowed_peer_keys": ["xyz"]}}, "p2p.allowed_peer_keys[0]: not 64 hex"),
        ({"log": {"level": "loud"}}, "log.level: must be one of"),
        ({"log": {"format": "xml"}}, "log.format: must be one of"),
        ({"consensus": {"tick_ms": 0}}, "consensus.tick_ms: must be between 1 and 1000, got 0"),
        (
            {"consensus": {"election_timeout_ticks_min": 200}},
            "consensus.election_timeout_ticks_min: must be between 11 and 99",
        ),
        (
            {"mempool": {"max_txs": 10, "max_txs_per_signer": 11}},
            "mempool.max_txs_per_signer: must be between 1 and 10",
        ),
    ],
)
def test_errors_name_file_and_key(
    tmp_path: Path, document: dict[str, object], message: str
) -> None:
    (tmp_path / "config.toml").write_text(tomli_w.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert message in str(caught.value).replace(str(tmp_path) + "/", "")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config: No such file"):
        load_config(tmp_path)
    (tmp_path / "config.toml").write_text("[rpc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.toml: not valid TOML"):
        load_config(tmp_path)


def test_peer_format() -> None:
    assert peer_invalid("ab" * 32 + "@127.0.0.1:1") is None
    assert peer_invalid("ab" * 31 + "@127.0.0.1:1") is not None
    assert peer_invalid("ab" * 32 + "@127.0.0.1") is not None
