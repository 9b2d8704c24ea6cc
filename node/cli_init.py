"""`seoulchain init`, `testnet` and `keys`: commands that write node homes and key files.

Key files are never overwritten (node/keys.py refuses); `init --force` rewrites config.toml
and genesis.json but keeps any key already in the home, since destroying a key destroys an
identity the chain may know. Testnet ports: node i uses p2p P+10i, rpc P+10i+1, metrics
P+10i+2 on 127.0.0.1, so several testnets can live side by side with different P.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from node import limits
from node.cli_common import CliError, known_roles
from node.config import (
    CONFIG_FILE,
    GENESIS_FILE,
    NODE_KEY_FILE,
    Config,
    ConsensusSection,
    write_config,
)
from node.genesis import (
    CONSENSUS_KINDS,
    ConsensusParams,
    Council,
    Genesis,
    GenesisAgency,
    GenesisValidator,
    parse_genesis,
    write_genesis,
)
from node.keys import load_key_file, new_key_file
from protocol.crypto import SigningKey
from protocol.tx import chain_id_invalid

log = logging.getLogger(__name__)

DEFAULT_CHAIN_ID = "seoulchain-local"
DEFAULT_BASE_PORT = 26600
AGENCIES_DIR = "agencies"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePorts:
    p2p: int
    rpc: int
    metrics: int

    @staticmethod
    def for_index(base_port: int, index: int) -> NodePorts:
        first = base_port + 10 * index
        return NodePorts(p2p=first, rpc=first + 1, metrics=first + 2)


def check_chain_id(chain_id: str) -> None:
    if (reason := chain_id_invalid(chain_id)) is not None:
        raise CliError(f"--chain-id {chain_id!r}: {reason}", exit_code=2)


def key_in(path: Path) -> SigningKey:
    """The key at `path`, created if missing (never overwritten)."""
    if path.exists():
        return load_key_file(path)
    return new_key_file(path)


def init_home(home: Path, *, chain_id: str, force: bool) -> Genesis:
    """A single-validator ("solo") home: node key, agency0 key with every role, genesis, config."""
    check_chain_id(chain_id)
    existing = [name for name in (CONFIG_FILE, GENESIS_FILE) if (home / name).exists()]
    if existing and not force:
        raise CliError(f"{home}: already initialised ({existing[0]} exists); use --force")
    (home / AGENCIES_DIR).mkdir(parents=True, exist_ok=True)
    node_key = key_in(home / NODE_KEY_FILE)
    agency_key = key_in(home / AGENCIES_DIR / "agency0.json")
    config = Config(home=home)
    config.node.moniker = home.resolve().name or "node"
    genesis = _checked_genesis(
        Genesis(
            chain_id=chain_id,
            genesis_time_ms=int(time.time() * 1000),
            consensus=ConsensusParams(kind="solo"),
            validators=(
                GenesisValidator(
                    name=config.node.moniker[:64],
                    public_key=node_key.public_key,
                    p2p_address=config.p2p.listen_address,
                    rpc_address=config.rpc.listen_address,
                ),
            ),
            agencies=(_agency("agency0", agency_key),),
        )
    )
    write_genesis(home / GENESIS_FILE, genesis)
    write_config(home, config, overwrite=True)
    return genesis


def _agency(name: str, key: SigningKey) -> GenesisAgency:
    return GenesisAgency(name=name, public_key=key.public_key, roles=known_roles())


def _checked_genesis(genesis: Genesis) -> Genesis:
    """Run what we built through the strict parser, so init can never write a genesis the
    node would refuse."""
    return parse_genesis(genesis.to_dict(), source="generated genesis")


def make_testnet(
    out: Path,
    *,
    nodes: int,
    consensus: str,
    base_port: int = DEFAULT_BASE_PORT,
    agencies: int = 2,
    chain_id: str = DEFAULT_CHAIN_ID,
) -> Genesis:
    """N node homes out/node0..N-1 sharing one genesis, plus out/agencies/agencyK.json."""
    _check_testnet_args(out, nodes=nodes, consensus=consensus, base_port=base_port)
    if not 1 <= agencies <= limits.testnet_agencies_max:
        raise CliError(f"--agencies must be 1..{limits.testnet_agencies_max}", exit_code=2)
    check_chain_id(chain_id)
    (out / AGENCIES_DIR).mkdir(parents=True, exist_ok=True)
    homes = [out / f"node{i}" for i in range(nodes)]
    for home in homes:
        home.mkdir()
    node_keys = [new_key_file(home / NODE_KEY_FILE) for home in homes]
    agency_keys = [key_in(out / AGENCIES_DIR / f"agency{k}.json") for k in range(agencies)]
    ports = [NodePorts.for_index(base_port, i) for i in range(nodes)]
    validators = tuple(
        GenesisValidator(
            name=f"node{i}",
            public_key=node_keys[i].public_key,
            p2p_address=f"127.0.0.1:{ports[i].p2p}",
            rpc_address=f"127.0.0.1:{ports[i].rpc}",
        )
        for i in range(nodes)
    )
    agency_list = tuple(_agency(f"agency{k}", key) for k, key in enumerate(agency_keys))
    council_keys = tuple(agency.public_key for agency in agency_list)
    genesis = _checked_genesis(
        Genesis(
            chain_id=chain_id,
            genesis_time_ms=int(time.time() * 1000),
            consensus=ConsensusParams(kind=consensus),
            validators=validators,
            agencies=agency_list,
            council=Council(public_keys=council_keys, threshold=len(council_keys) // 2 + 1),
        )
    )
    write_genesis(out / GENESIS_FILE, genesis)
    for i, home in enumerate(homes):
        write_genesis(home / GENESIS_FILE, genesis)
        write_config(home, _testnet_config(home, i, ports[i], validators), overwrite=False)
    return genesis


def _check_testnet_args(out: Path, *, nodes: int, consensus: str, base_port: int) -> None:
    if consensus not in CONSENSUS_KINDS:
        raise CliError(f"--consensus must be one of {', '.join(CONSENSUS_KINDS)}", exit_code=2)
    if not 1 <= nodes <= limits.testnet_nodes_max:
        raise CliError(f"--nodes must be 1..{limits.testnet_nodes_max}", exit_code=2)
    if consensus == "solo" and nodes != 1:
        raise CliError("--consensus solo runs exactly one node; use --nodes 1", exit_code=2)
    if not 1024 <= base_port <= 65535 - 10 * nodes:
        raise CliError(f"--base-port must be 1024..{65535 - 10 * nodes}", exit_code=2)
    if (out / "node0").exists() or (out / GENESIS_FILE).exists():
        raise CliError(f"{out}: already holds a testnet; choose another --out")


def _testnet_config(
    home: Path, index: int, ports: NodePorts, validators: tuple[GenesisValidator, ...]
) -> Config:
    config = Config(home=home, consensus=ConsensusSection())
    config.node.moniker = f"node{index}"
    config.p2p.listen_address = f"127.0.0.1:{ports.p2p}"
    config.p2p.persistent_peers = [
        f"{validator.public_key.hex()}@{validator.p2p_address}"
        for other, validator in enumerate(validators)
        if other != index
    ]
    config.rpc.listen_address = f"127.0.0.1:{ports.rpc}"
    config.metrics.listen_address = f"127.0.0.1:{ports.metrics}"
    return config


def keys_new(out: Path) -> SigningKey:
    if out.exists():
        raise CliError(f"{out}: already exists; refusing to overwrite a key")
    return new_key_file(out)
