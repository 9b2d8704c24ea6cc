"""Micro-benchmark: CPU per tx for a validator receiving one gossip batch of txs.

One in-process PBFT validator (node1 of a 4-validator genesis: a backup in view 0; real
LevelDB store, real services check_tx; not started, so no consensus and no sockets) gets
gossip batches exactly as p2p hands them over: the msgpack payload of the gossip channel,
through `TxGossip._on_message` (decode, seen-cache, SHA-256 per tx) and the node's handler.
The p2p transport is replaced by a stub with three connected peers whose `send` only counts,
so relaying costs its hashing, batching and msgpack encode but not ChaCha20 or the socket.

Modes:
- before:  full admission and relay to the 3 peers, which is what every validator did with
           every gossiped tx before standby (today: gossip from a non-validator peer);
- backup:  a batch from another validator at a non-leader: kept in standby;
- leader:  a batch from another validator at the leader: full admission, no relay.
The backup figure excludes the signature check the backup now makes when the tx's block
arrives (~39 us, once per tx per node, as before).
Figures: CPU us per tx from time.process_time() (verify threads included), fresh txs and a
fresh node per repetition, median of --reps.

Run: .venv/bin/python scripts/perf/gossip_receive.py [--txs 1000] [--batches 3] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.txgen import LoadSpec, sign_all
from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.node import Node
from protocol.crypto import SigningKey
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-perf"
AGENCIES = 8
TX_BYTES = 250
VALIDATORS = 4
ME = 1  # a backup in view 0


class _StubTransport:
    """Stands in for P2PNode under the node's gossip: three connected validator peers."""

    def __init__(self, peers: list[bytes]) -> None:
        self.peers = peers
        self.frames = 0

    def connected_keys(self) -> list[bytes]:
        return list(self.peers)

    def send(self, peer_key: bytes, channel_id: int, payload: bytes) -> bool:
        self.frames += 1
        return True

    def register_channel(
        self,
        channel_id: int,
        on_message: Callable[[bytes, bytes], None],
        *,
        send_queue_max: int,
        message_bytes_max: int,
    ) -> None:
        raise AssertionError("the stub replaces a transport after registration")


class Bench:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.keys = [SigningKey.from_secret(b"perf-validator-%d" % i) for i in range(VALIDATORS)]
        self.agencies = [SigningKey.from_secret(b"perf-agency-%d" % i) for i in range(AGENCIES)]
        self.genesis = Genesis(
            chain_id=CHAIN,
            genesis_time_ms=1_700_000_000_000,
            consensus=ConsensusParams(kind="pbft"),
            validators=tuple(
                GenesisValidator(
                    name=f"node{i}",
                    public_key=key.public_key,
                    p2p_address=f"127.0.0.1:{20_000 + i}",
                    rpc_address="127.0.0.1:1",
                )
                for i, key in enumerate(self.keys)
            ),
            agencies=tuple(
                GenesisAgency(name=f"agency-{i}", public_key=key.public_key, roles=("notary",))
                for i, key in enumerate(self.agencies)
            ),
        )
        self.runs = 0

    def fresh_raws(self, count: int) -> list[bytes]:
        self.runs += 1
        spec = LoadSpec(
            chain_id=CHAIN, expiry_height=1_000_000, tx_bytes=TX_BYTES, run_tag=f"g{self.runs}"
        )
        signed = sign_all(spec, self.agencies, count, workers=0).txs
        return [base64.b64decode(tx.text) for tx in signed]

    def fresh_node(self) -> Node:
        self.runs += 1
        config = Config(home=self.home / f"node{self.runs}")
        config.metrics.enabled = False
        store = LevelDbChainStore(self.home / f"db{self.runs}")
        return Node(config=config, genesis=self.genesis, key=self.keys[ME], store=store)


async def _receive(node: Node, sender: bytes, payloads: list[bytes]) -> None:
    assert node.network is not None
    gossip = node.network.gossip
    for payload in payloads:
        gossip._on_message(sender, payload)
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*pending)
    gossip.flush()


def run_once(bench: Bench, *, mode: str, txs: int, batches: int) -> tuple[float, int, int]:
    """(CPU us per tx, txs in the pool, txs relayed) for `batches` gossip batches."""
    raws = bench.fresh_raws(txs * batches)
    node = bench.fresh_node()
    assert node.network is not None
    others = [key.public_key for i, key in enumerate(bench.keys) if i != ME]
    stub = _StubTransport(others)
    node.network.gossip._transport = stub
    node.network.p2p.connected_keys = stub.connected_keys  # type: ignore[method-assign]
    if mode == "leader":
        _make_leader(node)
    sender = bench.keys[0].public_key
    if mode == "before":
        sender = SigningKey.from_secret(b"perf-observer").public_key
    payloads = [msgspec.msgpack.encode(raws[s : s + txs]) for s in range(0, len(raws), txs)]
    try:
        started = time.process_time()
        asyncio.run(_receive(node, sender, payloads))
        cpu_us = (time.process_time() - started) * 1e6 / len(raws)
        return cpu_us, len(node.mempool), node.network.gossip.stats.txs_sent
    finally:
        node.mempool.close()
        node.store.close()


def _make_leader(node: Node) -> None:
    """Tell the node it leads, as `Node._after_step` does after a view change."""
    keeper = getattr(node, "standby_keeper", None)
    if keeper is None:
        raise SystemExit("this tree has no leader/backup distinction (before the change)")
    keeper.leading = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=1_000, help="txs per gossip batch")
    parser.add_argument("--batches", type=int, default=3, help="batches per run (>= 2,000 txs)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="before,backup,leader")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perf-gossip-") as tmp:
        bench = Bench(Path(tmp))
        total = args.txs * args.batches
        sys.stdout.write(
            f"{args.batches} gossip batches of {args.txs} txs per run, median of {args.reps}\n"
        )
        for mode in args.modes.split(","):
            runs = [
                run_once(bench, mode=mode, txs=args.txs, batches=args.batches)
                for _ in range(args.reps)
            ]
            cpu = statistics.median(run[0] for run in runs)
            detail = ", ".join(f"{run[0]:.1f}" for run in runs)
            sys.stdout.write(
                f"  {mode:8s} {cpu:7.1f} us/tx ({detail}); pooled {runs[0][1]}/{total}, "
                f"relayed {runs[0][2]}\n"
            )


if __name__ == "__main__":
    main()
