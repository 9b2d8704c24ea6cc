"""Build N in-process nodes over real sockets on 127.0.0.1 for integration tests.

Every node gets its own LevelDB store under tmp_path, its own P2P listener and RPC server
on free ports, and the same genesis. Used by the in-process multi-node tests; the
multi-process tests drive `seoulchain testnet/start` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.ports import free_listen_port
from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.node import Node
from protocol.crypto import SigningKey
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-test"


def free_port() -> int:
    """A free listener port outside the ephemeral range (bench/ports.py says why)."""
    return free_listen_port()


@dataclass
class LocalNet:
    genesis: Genesis
    keys: list[SigningKey]
    configs: list[Config]
    agency: SigningKey
    root: Path

    def store_path(self, index: int) -> Path:
        return self.root / f"node{index}" / "chain.db"

    async def start_node(self, index: int) -> Node:
        node = Node(
            config=self.configs[index],
            genesis=self.genesis,
            key=self.keys[index],
            store=LevelDbChainStore(self.store_path(index)),
        )
        await node.start()
        return node


def local_net(root: Path, *, validators: int, consensus: str = "pbft") -> LocalNet:
    keys = [SigningKey.from_secret(f"validator-{i}".encode()) for i in range(validators)]
    agency = SigningKey.from_secret(b"agency-0")
    p2p_ports = [free_port() for _ in keys]
    genesis = Genesis(
        chain_id=CHAIN,
        genesis_time_ms=1_700_000_000_000,
        consensus=ConsensusParams(kind=consensus),
        validators=tuple(
            GenesisValidator(
                name=f"node{i}",
                public_key=key.public_key,
                p2p_address=f"127.0.0.1:{p2p_ports[i]}",
                rpc_address="127.0.0.1:1",
            )
            for i, key in enumerate(keys)
        ),
        agencies=(
            GenesisAgency(name="seoul-city", public_key=agency.public_key, roles=("notary",)),
        ),
    )
    configs = []
    for i in range(validators):
        config = Config(home=root / f"node{i}")
        config.p2p.listen_address = f"127.0.0.1:{p2p_ports[i]}"
        config.p2p.backoff_min_s = 0.05
        config.rpc.listen_address = "127.0.0.1:0"
        config.metrics.enabled = False
        config.consensus.tick_ms = 10
        config.consensus.block_interval_ms = 10
        config.consensus.view_change_timeout_ticks = 50
        configs.append(config)
    return LocalNet(genesis=genesis, keys=keys, configs=configs, agency=agency, root=root)
