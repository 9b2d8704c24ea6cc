"""Micro-benchmark: CPU per tx for a validator receiving gossip batches of txs, and for a
backup, the PRE-PREPARE carrying them.

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
- leader:  a batch from another validator at the leader: full admission, no relay;
- lazy:    as backup with the background standby verifier off (how a backup worked before
           it): signatures are checked when the PRE-PREPARE arrives;
- backup:  kept in standby and verified in the background (StandbyVerifier), drained
           before the PRE-PREPARE arrives (a tx waits in the leader's pool before it is
           ordered, so that is the usual case);
- rush:    as backup, but the PRE-PREPARE arrives right after the last gossip batch.
For lazy/backup/rush, after the gossip a PRE-PREPARE from the primary (validator 0) carrying
all the txs enters NodeNetwork's consensus ingress as encoded bytes (fresh decode memo):
"prep" is its CPU per tx and its wall time from arrival until the message is offered to
the engine (what delays this backup's PREPARE).
"commit" is the pool and standby upkeep once that block commits (Node._on_executed's
`remove_committed`, `standby.remove`, `release_abandoned_proposals`), per tx.
Each gossip batch is handed over in its own event-loop iteration, as p2p does, so the
background verifier takes small batches as they come (verified inline when they are at most
`verify_inline_txs_max`). The cluster's batches are small: at 2,000 tx/s each peer flushes
~5 txs every 10 ms (`--txs 5 --batches 400`); the default of 1,000 is a burst.
Figures: CPU us per tx from time.process_time() (verify threads included; for backup and
rush the receive figure includes the background verify), fresh txs and a fresh node per
repetition, median of --reps. --stub-verify replaces Ed25519 with a stub that accepts: the
figures without the verify itself, which is what these paths can shrink.

Run: .venv/bin/python scripts/perf/gossip_receive.py [--txs 1000] [--batches 2] [--reps 3]
     [--modes before,leader,lazy,backup,rush] [--stub-verify]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import protocol.tx
from bench.txgen import LoadSpec, sign_all
from consensus.pbft import messages as pbft_messages
from node.cli import _tune_garbage_collector
from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.node import Node
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.tx import Tx
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-perf"
AGENCIES = 8
TX_BYTES = 250
VALIDATORS = 4
ME = 1  # a backup in view 0


class StubTransport:
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


@dataclass(slots=True)
class Run:
    receive_us: float  # CPU per tx for the gossip (and the background verify)
    prep_us: float  # CPU per tx for the PRE-PREPARE (0 if none)
    prep_wall_ms: float  # PRE-PREPARE arrival -> offered to the engine (0 if none)
    commit_us: float  # CPU per tx for the pool and standby upkeep of the commit
    pooled: int
    relayed: int


async def _receive(node: Node, sender: bytes, payloads: list[bytes], *, drain: bool) -> None:
    assert node.network is not None
    gossip = node.network.gossip
    for payload in payloads:
        gossip._on_message(sender, payload)
        await asyncio.sleep(0)  # the next frame comes in a later loop iteration
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*(task for task in pending if task.get_name() != "standby-verify"))
    gossip.flush()
    if drain:
        await node.standby_verifier.idle()


def _block_of(bench: Bench, raws: list[bytes]) -> Block:
    """The primary's block of `raws`, decoded apart from the node's decode memo."""
    return make_block(
        chain_id=CHAIN,
        height=1,
        prev_hash=ZERO_HASH,
        time_ms=1,
        proposer=bench.keys[0].public_key,
        txs=tuple(protocol.tx._decode_tx_uncached(raw) for raw in raws),
        validators_hash=ZERO_HASH,
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )


def _pre_prepare_bytes(bench: Bench, node: Node, block: Block) -> bytes:
    """The encoded PRE-PREPARE of `block` from the primary (the caller clears the decode
    memo afterwards, so that only what the node itself decoded is a memo hit)."""
    primary = bench.keys[0]
    message = pbft_messages.make_pre_prepare(
        primary, chain_id=CHAIN, view=0, seq=1, block=block, replica=0
    )
    assert node.codec is not None
    return node.codec.encode(message)


async def _pre_prepare(node: Node, payload: bytes, primary: bytes) -> float:
    """Feed the PRE-PREPARE to the consensus ingress; wall seconds until it is offered."""
    network = node.network
    assert network is not None
    offered = asyncio.Event()
    network._offer = lambda sender, message, peer_key: offered.set()  # type: ignore[method-assign]
    started = time.perf_counter()
    network._on_consensus(primary, payload)
    await offered.wait()
    wall = time.perf_counter() - started
    assert network.rejected.total() == 0, network.rejected
    return wall


async def _scenario(
    bench: Bench, node: Node, mode: str, sender: bytes, payloads: list[bytes], raws: list[bytes]
) -> tuple[float, float, float, float, int]:
    """(receive CPU s, PRE-PREPARE CPU s, PRE-PREPARE wall s, commit CPU s, txs pooled)."""
    if mode == "lazy":
        await node.standby_verifier.stop()
    block = _block_of(bench, raws)
    prep_payload = _pre_prepare_bytes(bench, node, block) if mode in PREP_MODES else b""
    protocol.tx._decode_tx_cached.cache_clear()
    started = time.process_time()
    await _receive(node, sender, payloads, drain=mode == "backup")
    receive_cpu = time.process_time() - started
    prep_cpu = wall = 0.0
    if mode in PREP_MODES:
        started = time.process_time()
        wall = await _pre_prepare(node, prep_payload, bench.keys[0].public_key)
        prep_cpu = time.process_time() - started
    if mode == "rush":  # the background verify that was still running counts as receipt
        started = time.process_time()
        await node.standby_verifier.idle()
        receive_cpu += time.process_time() - started
    await node.standby_verifier.stop()
    assert node.network is not None
    for worker in node.network._workers.values():
        worker.cancel()
    pooled = len(node.mempool)
    # The committed block's txs as the node holds them: its decode memo's objects.
    txs = [protocol.tx.decode_tx(raw) for raw in raws]
    started = time.process_time()
    _commit(node, block.height, txs)
    commit_cpu = time.process_time() - started
    assert len(node.mempool) == len(node.standby) == 0, "the commit left txs behind"
    return receive_cpu, prep_cpu, wall, commit_cpu, pooled


def _commit(node: Node, height: int, txs: list[Tx]) -> None:
    """The pool and standby upkeep of Node._on_executed for a block of `txs`."""
    hashes = [tx.hash() for tx in txs]
    node.mempool.remove_committed(txs, committed_height=height)
    node.standby.remove(hashes)
    node.custody.release_abandoned_proposals(height, set(hashes))


@contextmanager
def verify_stubbed(enabled: bool) -> Iterator[None]:
    """Ed25519 replaced by a stub that accepts, for the figures without the verify."""
    real = protocol.tx.verify  # type: ignore[attr-defined]
    if enabled:
        protocol.tx.verify = lambda *_args: True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        protocol.tx.verify = real  # type: ignore[attr-defined]


PREP_MODES = ("lazy", "backup", "rush")


def run_once(bench: Bench, *, mode: str, txs: int, batches: int, stub_verify: bool = False) -> Run:
    """Figures for `batches` gossip batches (and, for a backup, their PRE-PREPARE)."""
    raws = bench.fresh_raws(txs * batches)
    node = bench.fresh_node()
    assert node.network is not None
    others = [key.public_key for i, key in enumerate(bench.keys) if i != ME]
    stub = StubTransport(others)
    node.network.gossip._transport = stub
    node.network.p2p.connected_keys = stub.connected_keys  # type: ignore[method-assign]
    if mode == "leader":
        _make_leader(node)
    sender = bench.keys[0].public_key
    if mode == "before":
        sender = SigningKey.from_secret(b"perf-observer").public_key
    payloads = [msgspec.msgpack.encode(raws[s : s + txs]) for s in range(0, len(raws), txs)]
    try:
        with verify_stubbed(stub_verify):
            scenario = _scenario(bench, node, mode, sender, payloads, raws)
            receive, prep, wall, commit, pooled = asyncio.run(scenario)
        verifications = node.mempool.counters.verifications
        assert mode == "before" or verifications == len(raws), "each tx verified exactly once"
        return Run(
            receive_us=receive * 1e6 / len(raws),
            prep_us=prep * 1e6 / len(raws),
            prep_wall_ms=wall * 1e3,
            commit_us=commit * 1e6 / len(raws),
            pooled=pooled,
            relayed=node.network.gossip.stats.txs_sent,
        )
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
    parser.add_argument("--batches", type=int, default=2, help="batches per run (>= 2,000 txs)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="before,leader,lazy,backup,rush")
    parser.add_argument("--stub-verify", action="store_true", help="Ed25519 stubbed out")
    args = parser.parse_args()
    _tune_garbage_collector()  # as `seoulchain start` does
    with tempfile.TemporaryDirectory(prefix="perf-gossip-") as tmp:
        bench = Bench(Path(tmp))
        total = args.txs * args.batches
        sys.stdout.write(
            f"{args.batches} gossip batches of {args.txs} txs per run, median of {args.reps}\n"
        )
        for mode in args.modes.split(","):
            runs = [
                run_once(
                    bench,
                    mode=mode,
                    txs=args.txs,
                    batches=args.batches,
                    stub_verify=args.stub_verify,
                )
                for _ in range(args.reps)
            ]
            receive = statistics.median(run.receive_us for run in runs)
            detail = ", ".join(f"{run.receive_us:.1f}" for run in runs)
            line = f"  {mode:7s} receive {receive:6.1f} us/tx ({detail})"
            if mode in PREP_MODES:
                prep = statistics.median(run.prep_us for run in runs)
                wall = statistics.median(run.prep_wall_ms for run in runs)
                walls = ", ".join(f"{run.prep_wall_ms:.1f}" for run in runs)
                line += f"; prep {prep:5.1f} us/tx, arrival->engine {wall:6.1f} ms ({walls})"
            commit = statistics.median(run.commit_us for run in runs)
            sys.stdout.write(
                f"{line}; commit {commit:4.1f} us/tx;"
                f" pooled {runs[0].pooled}/{total}, relayed {runs[0].relayed}\n"
            )


if __name__ == "__main__":
    main()
