"""config.toml: one node's local settings, with a documented default for every key.

Unlike genesis.json (shared by the whole chain), config.toml belongs to one node: where it
listens, its peers, its pool and block sizes, its timeouts, where its data lives. Every
section is a dataclass whose field defaults are the documented defaults (docs/CONFIG.md);
node/limits.py holds the numbers and the ceilings. Loading is strict: an unknown section or
key, or a value of the wrong type, raises `ConfigError` naming the file and the key, since a
misspelt key silently ignored is a limit silently not applied. Relative paths resolve
against the node's home directory.
"""

from __future__ import annotations

import dataclasses
import logging
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, get_type_hints

import tomli_w

from node import limits
from node.genesis import address_invalid
from protocol import limits as protocol_limits

log = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
NODE_KEY_FILE = "node_key.json"
CONFIG_FILE_BYTES_MAX = 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
_HEX = frozenset(string.hexdigits)


class ConfigError(ValueError):
    """config.toml is missing, unreadable or invalid; the message names file and key."""


@dataclass(slots=True, kw_only=True)
class NodeSection:
    moniker: str = "node"  # a human name for logs and status; not an identity
    key_file: str = NODE_KEY_FILE  # this node's Ed25519 key (validator or observer)
    genesis_file: str = GENESIS_FILE


@dataclass(slots=True, kw_only=True)
class P2PSection:
    listen_address: str = "127.0.0.1:26656"
    # Extra peers to dial besides the genesis validators: "<public key hex>@host:port".
    persistent_peers: list[str] = field(default_factory=list)
    # Public keys (hex) of non-validator nodes (observers) allowed to connect.
    allowed_peer_keys: list[str] = field(default_factory=list)
    max_peers: int = limits.p2p_peers_default
    send_queue_frames: int = limits.p2p_send_queue_default
    frame_bytes_max: int = limits.p2p_frame_bytes_default
    handshake_timeout_s: float = limits.p2p_handshake_timeout_s_default
    dial_timeout_s: float = limits.p2p_dial_timeout_s_default
    backoff_min_s: float = limits.p2p_backoff_s_min_default
    backoff_max_s: float = limits.p2p_backoff_s_max_default


@dataclass(slots=True, kw_only=True)
class RpcSection:
    listen_address: str = "127.0.0.1:26657"  # loopback by default (RELIABILITY.md P1)
    max_body_bytes: int = limits.rpc_body_bytes_default
    max_batch: int = limits.rpc_batch_default
    max_open_connections: int = limits.rpc_open_connections_default
    max_subscription_clients: int = limits.rpc_subscription_clients_default
    commit_timeout_s: float = limits.rpc_commit_timeout_s_default
    cors_allowed_origins: list[str] = field(default_factory=list)  # never "*" by default


@dataclass(slots=True, kw_only=True)
class MetricsSection:
    listen_address: str = "127.0.0.1:26660"
    enabled: bool = True


@dataclass(slots=True, kw_only=True)
class MempoolSection:
    max_txs: int = limits.mempool_txs_default
    max_bytes: int = limits.mempool_bytes_default
    max_tx_bytes: int = limits.mempool_tx_bytes_default
    max_txs_per_signer: int = limits.mempool_txs_per_signer_default
    verified_cache_size: int = limits.verified_cache_size_default


@dataclass(slots=True, kw_only=True)
class ConsensusSection:
    tick_ms: int = limits.tick_ms_default  # length of one engine tick
    block_max_txs: int = limits.block_max_txs_default
    block_max_bytes: int = limits.block_max_bytes_default
    # A block is cut when block_max_txs txs wait, or when this interval has passed with at
    # least one tx waiting (or with none, if create_empty_blocks).
    block_interval_ms: int = limits.block_interval_ms_default
    create_empty_blocks: bool = False
    view_change_timeout_ticks: int = 100  # PBFT: no progress for this long -> view change
    election_timeout_ticks_min: int = 50  # Raft: randomised in [min, max]
    election_timeout_ticks_max: int = 100
    heartbeat_ticks: int = 5  # Raft leader heartbeat


@dataclass(slots=True, kw_only=True)
class StorageSection:
    db_path: str = "data/chain.db"


@dataclass(slots=True, kw_only=True)
class LogSection:
    level: str = "info"
    format: str = "text"


@dataclass(slots=True, kw_only=True)
class Config:
    node: NodeSection = field(default_factory=NodeSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    storage: StorageSection = field(default_factory=StorageSection)
    log: LogSection = field(default_factory=LogSection)
    # Where the config was loaded from; relative paths resolve against it. Not written.
    home: Path = field(default_factory=Path.cwd, compare=False)

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.home / candidate

    @property
    def key_path(self) -> Path:
        return self.resolve(self.node.key_file)

    @property
    def genesis_path(self) -> Path:
        return self.resolve(self.node.genesis_file)

    @property
    def db_path(self) -> Path:
        return self.resolve(self.storage.db_path)

    def rpc_url(self) -> str:
        host, _, port = self.rpc.listen_address.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    def to_dict(self) -> dict[str, Any]:
        return {
            section.name: dataclasses.asdict(getattr(self, section.name))
            for section in dataclasses.fields(self)
            if section.name != "home"
        }


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "p2p": P2PSection,
    "rpc": RpcSection,
    "metrics": MetricsSection,
    "mempool": MempoolSection,
    "consensus": ConsensusSection,
    "storage": StorageSection,
    "log": LogSection,
}


def load_config(home: Path) -> Config:
    """Read home/config.toml; ConfigError naming the file and key on any problem."""
    path = home / CONFIG_FILE
    try:
        with path.open("rb") as handle:
            raw = handle.read(CONFIG_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror or error}") from None
    if len(raw) > CONFIG_FILE_BYTES_MAX:
        raise ConfigError(f"{path}: larger than {CONFIG_FILE_BYTES_MAX} bytes")
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(document, home=home, source=str(path))


def parse_config(document: dict[str, Any], *, home: Path, source: str = CONFIG_FILE) -> Config:
    sections: dict[str, Any] = {}
    for name, value in document.items():
        if name not in _SECTIONS:
            _fail(source, name, f"unknown section (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            _fail(source, name, "must be a table")
        sections[name] = _parse_section(_SECTIONS[name], value, source=source, section=name)
    config = Config(**sections, home=home.resolve())
    _check_values(config, source)
    return config


def _parse_section(cls: type[Any], table: dict[str, Any], *, source: str, section: str) -> Any:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{section}.{key}"
        if key not in hints:
            _fail(source, where, f"unknown key (known: {', '.join(hints)})")
        values[key] = _typed(hints[key], value, source=source, where=where)
    return cls(**values)


def _typed(hint: Any, value: Any, *, source: str, where: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            _fail(source, where, f"must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(source, where, f"must be an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(source, where, f"must be a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(source, where, f"must be a string, got {_describe(value)}")
        return value
    assert hint == list[str], f"unsupported config type {hint}"
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        _fail(source, where, f"must be a list of strings, got {_describe(value)}")
    return list(value)


def _check_values(config: Config, source: str) -> None:
    """Semantic checks: ranges, addresses, enumerations and relations between keys."""
    for where, reason in _problems(config):
        _fail(source, where, reason)


def _problems(config: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for where, address in (
        ("p2p.listen_address", config.p2p.listen_address),
        ("rpc.listen_address", config.rpc.listen_address),
        ("metrics.listen_address", config.metrics.listen_address),
    ):
        if (reason := address_invalid(address)) is not None:
            problems.append((where, reason))
    for index, peer in enumerate(config.p2p.persistent_peers):
        if (reason := peer_invalid(peer)) is not None:
            problems.append((f"p2p.persistent_peers[{index}]", reason))
    for index, key in enumerate(config.p2p.allowed_peer_keys):
        if len(key) != 64 or not set(key) <= _HEX:
            problems.append((f"p2p.allowed_peer_keys[{index}]", "not 64 hex characters"))
    problems.extend(_range_problems(config))
    if config.log.level not in LOG_LEVELS:
        problems.append(("log.level", f"must be one of {', '.join(LOG_LEVELS)}"))
    if config.log.format not in LOG_FORMATS:
        problems.append(("log.format", f"must be one of {', '.join(LOG_FORMATS)}"))
    if "*" in config.rpc.cors_allowed_origins:
        log.warning("rpc.cors_allowed_origins contains '*': any web page may call this node")
    return problems


def _range_problems(config: Config) -> list[tuple[str, str]]:
    c, m, r, p = config.consensus, config.mempool, config.rpc, config.p2p
    checks: list[tuple[str, float, float, float]] = [  # where, value, minimum, maximum
        ("mempool.max_txs", m.max_txs, 1, limits.mempool_txs_max),
        ("mempool.max_bytes", m.max_bytes, m.max_tx_bytes, limits.mempool_bytes_max),
        ("mempool.max_tx_bytes", m.max_tx_bytes, 1, limits.mempool_tx_bytes_default),
        ("mempool.max_txs_per_signer", m.max_txs_per_signer, 1, m.max_txs),
        ("mempool.verified_cache_size", m.verified_cache_size, 1, limits.verified_cache_size_max),
        ("consensus.tick_ms", c.tick_ms, limits.tick_ms_min, limits.tick_ms_max),
        ("consensus.block_max_txs", c.block_max_txs, 1, protocol_limits.block_txs_max),
        (
            "consensus.block_max_bytes",
            c.block_max_bytes,
            m.max_tx_bytes,
            limits.block_max_bytes_ceiling,
        ),
        ("consensus.block_interval_ms", c.block_interval_ms, 1, 60_000),
        ("consensus.view_change_timeout_ticks", c.view_change_timeout_ticks, 2, 1_000_000),
        ("consensus.heartbeat_ticks", c.heartbeat_ticks, 1, 1_000_000),
        (
            # Raft: more than two heartbeats fit in an election timeout, and the timeout
            # is drawn from a real range (consensus/raft/config.py asserts both).
            "consensus.election_timeout_ticks_min",
            c.election_timeout_ticks_min,
            2 * c.heartbeat_ticks + 1,
            c.election_timeout_ticks_max - 1,
        ),
        ("consensus.election_timeout_ticks_max", c.election_timeout_ticks_max, 2, 1_000_000),
        ("rpc.max_body_bytes", r.max_body_bytes, 1024, limits.rpc_body_bytes_max),
        ("rpc.max_batch", r.max_batch, 1, limits.rpc_batch_max),
        ("rpc.max_open_connections", r.max_open_connections, 1, 100_000),
        ("rpc.max_subscription_clients", r.max_subscription_clients, 0, 100_000),
        ("rpc.commit_timeout_s", r.commit_timeout_s, 0.001, limits.rpc_commit_timeout_s_max),
        ("p2p.max_peers", p.max_peers, 1, 1_000),
        ("p2p.send_queue_frames", p.send_queue_frames, 1, 1_000_000),
        ("p2p.frame_bytes_max", p.frame_bytes_max, limits.p2p_frame_bytes_default, 1 << 30),
        ("p2p.handshake_timeout_s", p.handshake_timeout_s, 0.01, 600.0),
        ("p2p.dial_timeout_s", p.dial_timeout_s, 0.01, 600.0),
        ("p2p.backoff_min_s", p.backoff_min_s, 0.001, p.backoff_max_s),
        ("p2p.backoff_max_s", p.backoff_max_s, 0.001, 3_600.0),
    ]
    return [
        (where, f"must be between {_number(low)} and {_number(high)}, got {_number(value)}")
        for where, value, low, high in checks
        if not low <= value <= high
    ]


def peer_invalid(peer: str) -> str | None:
    """None if `peer` is "<64 hex public key>@host:port"; else the reason."""
    key, separator, address = peer.partition("@")
    if not separator:
        return f"{peer!r} is not <public key hex>@host:port"
    if len(key) != 64 or not set(key) <= _HEX:
        return f"{peer!r}: public key is not 64 hex characters"
    return address_invalid(address)


def write_config(home: Path, config: Config, *, overwrite: bool = False) -> Path:
    """Write home/config.toml (every key, defaults included, so operators see them all)."""
    path = home / CONFIG_FILE
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: already exists")
    path.write_text(tomli_w.dumps(config.to_dict()), encoding="utf-8")
    return path


def _fail(source: str, where: str, reason: str) -> NoReturn:
    raise ConfigError(f"{source}: {where}: {reason}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
