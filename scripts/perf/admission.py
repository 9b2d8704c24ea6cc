"""Micro-benchmark: CPU per tx of admitting client txs (JSON-RPC broadcast_txs -> mempool).

One in-process node (solo genesis, real LevelDB store, real services check_tx, not started:
no consensus, no network) is fed request bodies exactly as the bench load generator sends
them: `broadcast_txs` with 500 base64 notary anchors of ~250 bytes. Each request goes through
the real path minus the socket: JSON decode, the dispatcher, the method handler,
Node.submit_txs, Mempool.add_batch, and the JSON encode of the answer.

Figures (CPU us per tx from time.process_time(), so verify threads count; median of 3 runs
of fresh txs, each run on a fresh node, after one warm-up run that is not counted):
- total:      the whole path, signatures verified;
- no-verify:  the same with the verified-hash cache pre-filled (the signature floor removed);
- check_tx:   time inside the application's check_tx during the no-verify runs (and, for
              reference, check_tx alone over already decoded txs);
- admission:  no-verify minus its check_tx time, the part this benchmark exists to shrink;
- commit:     per-commit pool maintenance (reap 2,000 + remove_committed) per committed tx.

With --http (the path a cluster node runs, at the bench's batch sizes): a backup of a
4-validator PBFT genesis (scripts/perf/gossip_receive.py's rig: gossip to three stub peers,
flushed after each call as the 10 ms flush interval does at the bench's call rate) behind
its real RpcServer (aiohttp, uvloop, metrics) on loopback. A client in a subprocess sends
`broadcast_txs` calls of each --batches size back to back on one keep-alive connection, as
the bench's aiohttp client does. Figures: CPU us per tx of the node's main thread
(thread_time of the event loop; small batches verify inline on it) with real signature
checks (`main`) and with Ed25519 replaced by a stub that accepts (`stub`: everything but
the verify itself, which is what this path can shrink).

Run: .venv/bin/python scripts/perf/admission.py [--txs 3000] [--reps 3]
     [--http] [--batches 5,20,50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gossip_receive

from bench.txgen import LoadSpec, sign_all
from node.api import SubmitResult
from node.cli import _tune_garbage_collector
from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.node import Node
from node.rpc.config import RpcConfig
from node.rpc.dispatch import Dispatcher
from node.rpc.jsonrpc import decode_json, encode_json
from node.rpc.methods import RpcMethods
from node.rpc.server import RpcServer
from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx, decode_tx
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-perf"
AGENCIES = 8
BATCH_TXS = 500
TX_BYTES = 250
BLOCK_TXS = 2_000


def make_genesis(agencies: list[SigningKey], validator: SigningKey) -> Genesis:
    return Genesis(
        chain_id=CHAIN,
        genesis_time_ms=1_700_000_000_000,
        consensus=ConsensusParams(kind="solo"),
        validators=(
            GenesisValidator(
                name="node0",
                public_key=validator.public_key,
                p2p_address="127.0.0.1:1",
                rpc_address="127.0.0.1:2",
            ),
        ),
        agencies=tuple(
            GenesisAgency(name=f"agency-{i}", public_key=key.public_key, roles=("notary",))
            for i, key in enumerate(agencies)
        ),
    )


class Bench:
    def __init__(self, home: Path, txs_per_run: int) -> None:
        self.home = home
        self.txs_per_run = txs_per_run
        self.validator = SigningKey.from_secret(b"perf-validator")
        self.agencies = [SigningKey.from_secret(b"perf-agency-%d" % i) for i in range(AGENCIES)]
        self.genesis = make_genesis(self.agencies, self.validator)
        self.runs = 0

    def fresh_texts(self) -> list[str]:
        self.runs += 1
        spec = LoadSpec(
            chain_id=CHAIN, expiry_height=1_000_000, tx_bytes=TX_BYTES, run_tag=f"r{self.runs}"
        )
        return [tx.text for tx in sign_all(spec, self.agencies, self.txs_per_run, workers=0).txs]

    def fresh_node(self) -> Node:
        self.runs += 1
        config = Config(home=self.home / f"node{self.runs}")
        store = LevelDbChainStore(self.home / f"db{self.runs}")
        return Node(config=config, genesis=self.genesis, key=self.validator, store=store)


def bodies_of(texts: list[str], batch: int = BATCH_TXS) -> list[bytes]:
    return [
        encode_json(
            {
                "jsonrpc": "2.0",
                "id": start,
                "method": "broadcast_txs",
                "params": {"txs": texts[start : start + batch]},
            }
        )
        for start in range(0, len(texts), batch)
    ]


async def submit_all(dispatcher: Dispatcher, bodies: list[bytes]) -> int:
    """The server's POST path minus aiohttp; returns how many txs were admitted."""
    admitted = 0
    for body in bodies:
        response = await dispatcher.handle_document(decode_json(body), None)
        encoded = encode_json(response)
        admitted += encoded.count(b'"code":0,')
    return admitted


class TimedAdmit:
    """Wraps the node's check_tx to add up the CPU time spent in it (thread_time: the
    calling thread's CPU clock, so a busy machine that preempts us does not inflate it),
    so that `admission` excludes it. The clock reads cost ~0.2 us each; about one read's
    worth lands inside the measured span, one outside, so they roughly cancel."""

    def __init__(self, admit: Callable[[Tx, int], TxResult]) -> None:
        self.admit = admit
        self.seconds = 0.0

    def __call__(self, tx: Tx, next_height: int) -> TxResult:
        started = time.thread_time()
        try:
            return self.admit(tx, next_height)
        finally:
            self.seconds += time.thread_time() - started


def run_rpc(bench: Bench, *, preverify: bool) -> tuple[float, float, float]:
    """CPU us per tx of (the RPC path, check_tx within it, commit maintenance)."""
    texts = bench.fresh_texts()
    node = bench.fresh_node()
    try:
        if preverify:
            for text in texts:
                raw = base64.b64decode(text)
                node.mempool.verified.add(hashlib.sha256(raw).digest())
        timed = TimedAdmit(node.mempool._admit)
        node.mempool._admit = timed
        dispatcher = Dispatcher(RpcMethods(node, RpcConfig()).table(), RpcConfig(), None)
        bodies = bodies_of(texts)
        started = time.process_time()
        admitted = asyncio.run(submit_all(dispatcher, bodies))
        rpc_us = (time.process_time() - started) * 1e6 / len(texts)
        assert admitted == len(texts), f"only {admitted} of {len(texts)} admitted"
        assert len(node.mempool) == len(texts)
        commit_us = commit_maintenance(node)
        return rpc_us, timed.seconds * 1e6 / len(texts), commit_us
    finally:
        node.mempool.close()
        node.store.close()


def commit_maintenance(node: Node) -> float:
    """Reap blocks of BLOCK_TXS and remove them as committed: CPU us per committed tx."""
    pool = node.mempool
    height = pool.next_height
    total = 0
    started = time.process_time()
    while len(pool):
        txs = pool.reap(max_txs=BLOCK_TXS, max_bytes=1 << 30, height=height)
        pool.remove_committed(txs, committed_height=height)
        total += len(txs)
        height += 1
    return (time.process_time() - started) * 1e6 / max(1, total)


def run_check_tx(bench: Bench) -> float:
    texts = bench.fresh_texts()
    node = bench.fresh_node()
    try:
        txs = [decode_tx(base64.b64decode(text)) for text in texts]
        height = node.mempool.next_height
        started = time.process_time()
        for tx in txs:
            assert node._admit(tx, height).ok
        return (time.process_time() - started) * 1e6 / len(txs)
    finally:
        node.mempool.close()
        node.store.close()


# The HTTP client, run in a subprocess so that its CPU is not the node's: one keep-alive
# connection, one request at a time, each answer read in full; prints the admitted count.
_CLIENT_SOURCE = r"""
import socket, struct, sys
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()
bodies, at = [], 0
while at < len(data):
    (size,) = struct.unpack_from(">I", data, at)
    bodies.append(data[at + 4 : at + 4 + size])
    at += 4 + size
sock = socket.create_connection(("127.0.0.1", port))
reader = sock.makefile("rb")
sys.stdin.readline()  # go: the node's clock runs from here
admitted = 0
for body in bodies:
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    admitted += reader.read(length).count(b'"code":0,')
sys.stdout.write(str(admitted))
"""


def run_http(rig: gossip_receive.Bench, tmp: Path, *, batch: int, txs: int, stub: bool) -> float:
    """Main-thread CPU us per tx of `broadcast_txs` calls of `batch` txs over HTTP."""
    raws = rig.fresh_raws(txs)
    node = rig.fresh_node()
    network = node.network
    assert network is not None
    stub_transport = gossip_receive.StubTransport(
        [key.public_key for i, key in enumerate(rig.keys) if i != gossip_receive.ME]
    )
    network.gossip._transport = stub_transport
    submit = node.submit_txs

    async def submit_and_flush(raws: list[bytes]) -> list[SubmitResult]:
        results = await submit(raws)
        network.gossip.flush()
        return results

    node.submit_txs = submit_and_flush  # type: ignore[method-assign]
    texts = [base64.b64encode(raw).decode("ascii") for raw in raws]
    path = tmp / f"bodies{rig.runs}"
    path.write_bytes(
        b"".join(struct.pack(">I", len(body)) + body for body in bodies_of(texts, batch))
    )

    async def serve() -> float:
        server = RpcServer(
            node, config=RpcConfig(port=0), metrics=node.metrics, bus=node.event_bus()
        )
        await server.start()
        try:
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CLIENT_SOURCE, str(server.port), str(path),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            await asyncio.sleep(0.5)  # the client starts and connects
            started = time.thread_time()
            output, _ = await client.communicate(b"go\n")
            spent = time.thread_time() - started
            assert int(output) == txs, f"only {output!r} of {txs} admitted"
            return spent
        finally:
            await server.stop()

    try:
        with gossip_receive.verify_stubbed(stub):
            spent = uvloop.run(serve())
        assert len(node.mempool) == txs
        assert stub_transport.frames >= 3
        return spent * 1e6 / txs
    finally:
        node.mempool.close()
        node.store.close()


def median_of(reps: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(reps)]
    return statistics.median(values), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=3_000, help="txs per run (>= 2,000)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="only the HTTP figures")
    parser.add_argument("--batches", default="5,20,50", help="txs per call, for --http")
    args = parser.parse_args()
    if args.http:
        main_http(args.txs, args.reps, [int(size) for size in args.batches.split(",")])
        return
    with tempfile.TemporaryDirectory(prefix="perf-admission-") as tmp:
        bench = Bench(Path(tmp), args.txs)
        run_rpc(bench, preverify=True)  # warm-up, not counted: imports, first LevelDB reads
        totals = [run_rpc(bench, preverify=False) for _ in range(args.reps)]
        bare = [run_rpc(bench, preverify=True) for _ in range(args.reps)]
        check, check_runs = median_of(args.reps, lambda: run_check_tx(bench))
    total = statistics.median(t[0] for t in totals)
    no_verify = statistics.median(b[0] for b in bare)
    in_place = statistics.median(b[1] for b in bare)
    admission = [b[0] - b[1] for b in bare]
    commit = statistics.median([t[2] for t in totals] + [b[2] for b in bare])
    rows = [
        ("total (RPC path, verify included)", total, [t[0] for t in totals]),
        ("no-verify (verified cache pre-filled)", no_verify, [b[0] for b in bare]),
        ("check_tx within no-verify", in_place, [b[1] for b in bare]),
        ("admission = no-verify - check_tx", statistics.median(admission), admission),
        ("check_tx alone, pre-decoded txs", check, check_runs),
        ("commit maintenance per committed tx", commit, [t[2] for t in totals]),
    ]
    sys.stdout.write(f"{args.txs} txs per run, {BATCH_TXS} per request, median of {args.reps}\n")
    for name, value, runs in rows:
        detail = ", ".join(f"{v:.1f}" for v in runs)
        sys.stdout.write(f"  {name:42s} {value:7.1f} us/tx  {detail}\n")


def main_http(txs: int, reps: int, batches: list[int]) -> None:
    _tune_garbage_collector()  # as `seoulchain start` does
    with tempfile.TemporaryDirectory(prefix="perf-admission-") as tmp:
        rig = gossip_receive.Bench(Path(tmp))
        run_http(rig, Path(tmp), batch=20, txs=txs, stub=True)  # warm-up, not counted
        sys.stdout.write(f"{txs} txs per run over HTTP, main thread, median of {reps}\n")
        for batch in batches:
            for stub in (False, True):
                runs = [
                    run_http(rig, Path(tmp), batch=batch, txs=txs, stub=stub) for _ in range(reps)
                ]
                detail = ", ".join(f"{v:.1f}" for v in runs)
                name = f"http batch {batch} {'stub' if stub else 'main'}"
                sys.stdout.write(f"  {name:42s} {statistics.median(runs):7.1f} us/tx  {detail}\n")


if __name__ == "__main__":
    main()
