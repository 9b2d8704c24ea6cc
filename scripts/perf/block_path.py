"""Micro-benchmark of the per-block path, in one process: CPU microseconds per tx.

For one block of 2,000 signed ~250-byte notary anchors it times, each as the median of 3
repetitions over the whole block (so every figure covers 2,000 txs):

- PBFT PRE-PREPARE encode (primary, fresh block) and decode (backup, txs already decoded
  on admission, as in the node) plus its stateless `invalid` check;
- Raft AppendEntries encode and decode of one entry carrying the block;
- block hash + tx hashes + Merkle root of a freshly built block (`Block.invalid`);
- seal + open of the PRE-PREPARE through a real p2p SecureSession, framing included;
- the executor's store-side work: block/seal/results encoding, results root, and
  `commit_block` on a real LevelDbChainStore in a temp dir (one synced batch, as the node);
- results root + results encoding on their own (the app and the executor both need them).

Run: .venv/bin/python scripts/perf/block_path.py [--txs 2000] [--repeat 3] [--profile]

`--store-load TXS` runs a long anchor-shaped load on the store instead (see `store_load`):
CPU per tx of state reads, commits and LevelDB's background thread, per 200,000 txs.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consensus.pbft import messages as pbft_messages
from consensus.pbft.codec import PbftCodec, encode_certificate
from consensus.pbft.config import PbftConfig
from consensus.raft import messages as raft_messages
from consensus.raft.codec import RaftCodec
from consensus.raft.config import RaftConfig
from consensus.types import NodeId
from p2p.framing import LENGTH_PREFIX
from p2p.secure import SecureSession, decode_records, encode_records
from protocol import tx as tx_module
from protocol.block import Block, decode_block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.results import TxResult, encode_results, results_root
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote, sign_leader_seal
from protocol.tx import Tx, sign_tx
from protocol.validators import ValidatorSet
from storage.interface import BlockCommit
from storage.leveldb import LevelDbChainStore

CHAIN_ID = "perf-chain"
TX_BYTES_TARGET = 250


def _keys(count: int, tag: str) -> list[SigningKey]:
    return [SigningKey(hashlib.sha256(f"{tag}{i}".encode()).digest()) for i in range(count)]


def make_txs(count: int) -> list[Tx]:
    """Signed notary-anchor-shaped txs of ~250 bytes (the body is opaque to this path)."""
    agencies = _keys(16, "agency")
    txs = []
    for index in range(count):
        body = hashlib.sha256(b"doc%d" % index).digest() + b"x" * 76
        tx = sign_tx(
            agencies[index % len(agencies)],
            chain_id=CHAIN_ID,
            nonce=index,
            expiry_height=1_000_000,
            kind="notary.anchor",
            body=body,
        )
        txs.append(tx)
    assert abs(len(txs[0].encode()) - TX_BYTES_TARGET) < 10, len(txs[0].encode())
    return txs


def fresh_block(txs: list[Tx], validators: ValidatorSet, height: int = 1) -> Block:
    return make_block(
        chain_id=CHAIN_ID,
        height=height,
        prev_hash=ZERO_HASH if height == 1 else b"\x01" * 32,
        time_ms=1_700_000_000_000,
        proposer=validators.public_keys[0],
        txs=tuple(txs),
        validators_hash=validators.hash(),
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )


def measure(
    name: str,
    run: Callable[[Any], object],
    txs: int,
    repeat: int,
    setup: Callable[[], Any] = lambda: None,
) -> float:
    """Median CPU time of `run(setup())` over `repeat` runs, per tx; setup is not timed."""
    samples = []
    for _ in range(repeat):
        argument = setup()
        started = time.process_time()
        run(argument)
        samples.append(time.process_time() - started)
    per_tx = statistics.median(samples) / txs * 1e6
    runs = ", ".join(f"{sample * 1e3:.1f}" for sample in samples)
    print(f"{name:<46} {per_tx:7.2f} us/tx   (runs: {runs} ms)")
    return per_tx


class Bench:
    def __init__(self, tx_count: int) -> None:
        self.keys = _keys(4, "validator")
        self.validators = ValidatorSet(tuple(key.public_key for key in self.keys))
        self.txs = make_txs(tx_count)
        self.raws = [tx.encode() for tx in self.txs]
        self.pbft = PbftCodec(PbftConfig(chain_id=CHAIN_ID, validators=self.validators, node_id=1))
        self.raft = RaftCodec(RaftConfig(chain_id=CHAIN_ID, validators=self.validators, node_id=1))
        for raw in self.raws:  # a backup decoded every tx on admission
            tx_module.decode_tx(raw)

    def rebuilt_txs(self) -> list[Tx]:
        """New Tx objects with no memo, as the primary's pool would hold fresh ones."""
        return [tx_module._decode_tx_uncached(raw) for raw in self.raws]

    def pre_prepare(self, block: Block) -> pbft_messages.PrePrepare:
        return pbft_messages.make_pre_prepare(
            self.keys[0], chain_id=CHAIN_ID, view=0, seq=block.height, block=block, replica=0
        )

    def append_entries(self, block: Block) -> raft_messages.AppendEntries:
        entry = raft_messages.Entry(
            term=1,
            signer=0,
            block=block,
            seal_signature=sign_leader_seal(
                self.keys[0],
                chain_id=CHAIN_ID,
                term=1,
                height=block.height,
                block_hash=block.hash(),
            ),
        )
        message = raft_messages.AppendEntries(
            term=1, sender=0, prev_index=0, prev_term=0, entries=(entry,), leader_commit=0
        )
        return raft_messages.sign_message(self.keys[0], CHAIN_ID, message)

    def seal_for(self, block: Block) -> Seal:
        signatures = tuple(
            (
                index,
                sign_commit_vote(
                    key, chain_id=CHAIN_ID, view=0, height=block.height, block_hash=block.hash()
                ),
            )
            for index, key in enumerate(self.keys[:3])
        )
        return Seal(
            kind=SEAL_QUORUM,
            round=0,
            height=block.height,
            block_hash=block.hash(),
            signatures=signatures,
        )


def results_for(block: Block) -> list[TxResult]:
    return [
        TxResult(code=0, log="anchored", data=hashlib.sha256(raw).digest())
        for raw in block.encoded_txs()
    ]


def state_writes_for(block: Block) -> dict[bytes, bytes | None]:
    writes: dict[bytes, bytes | None] = {}
    for tx in block.txs:
        writes[b"replay/" + tx.replay_key] = b"\x01"
        writes[b"notary/doc/" + tx.body[:32]] = tx.body + tx.signer + b"\x00" * 40
    return writes


def run_all(bench: Bench, repeat: int) -> dict[str, float]:
    count = len(bench.txs)
    figures: dict[str, float] = {}
    block = fresh_block(bench.txs, bench.validators)
    pp_bytes = bench.pbft.encode(bench.pre_prepare(block))
    ae_bytes = bench.raft.encode(bench.append_entries(block))

    def fresh_pool_txs() -> list[Tx]:
        """The primary's pool holds decoded, hashed txs (admission did both)."""
        txs = bench.rebuilt_txs()
        for tx in txs:
            tx.hash()
        return txs

    def pbft_encode(txs: list[Tx]) -> None:
        bench.pbft.encode(bench.pre_prepare(fresh_block(txs, bench.validators)))

    def pbft_decode(_: None) -> None:
        message = bench.pbft.decode(pp_bytes)
        assert bench.pbft.invalid(message, NodeId(0)) is None

    def raft_encode(txs: list[Tx]) -> None:
        bench.raft.encode(bench.append_entries(fresh_block(txs, bench.validators)))

    def raft_decode(_: None) -> None:
        message = bench.raft.decode(ae_bytes)
        assert bench.raft.invalid(message, NodeId(0)) is None

    def received_certificate() -> pbft_messages.PreparedCertificate:
        message = bench.pbft.decode(pp_bytes)
        assert isinstance(message, pbft_messages.PrePrepare)
        return pbft_messages.PreparedCertificate(pre_prepare=message, prepares=())

    def reencode(certificate: pbft_messages.PreparedCertificate) -> None:
        encode_certificate(certificate)  # the durable PBFT record of a prepared block
        certificate.pre_prepare.block.encode()  # the block record the executor stores

    def fresh_copy() -> Block:
        return Block(header=block.header, txs=block.txs, tx_bytes=block.tx_bytes)

    def hashes(fresh: Block) -> None:
        assert fresh.invalid() is None
        fresh.hash()
        fresh.tx_hashes()

    def p2p(_: None) -> None:
        sender = SecureSession(send_key=b"a" * 32, receive_key=b"b" * 32)
        receiver = SecureSession(send_key=b"b" * 32, receive_key=b"a" * 32)
        # As a peer connection does: the sealed body goes out behind its prefix as two
        # buffers; the reader gets the body back as bytes (the copy stands for the socket).
        body = sender.seal_buffer(encode_records([(1, pp_bytes)]))
        wire = (LENGTH_PREFIX.pack(len(body)), body)
        received = bytes(wire[1])
        records = decode_records(receiver.open_buffer(received), records_max=1024)
        assert records[0][1] == pp_bytes

    results = results_for(block)

    def fresh_results() -> list[TxResult]:
        return [TxResult(code=r.code, log=r.log, data=r.data) for r in results]

    def results_work(fresh: list[TxResult]) -> None:
        results_root(fresh)  # the app
        encode_results(fresh)  # the executor

    figures["pbft_encode"] = measure(
        "PBFT PRE-PREPARE build block + encode", pbft_encode, count, repeat, fresh_pool_txs
    )
    figures["pbft_decode"] = measure(
        "PBFT PRE-PREPARE decode + invalid", pbft_decode, count, repeat
    )
    figures["reencode"] = measure(
        "received block: durable record + store encode",
        reencode,
        count,
        repeat,
        received_certificate,
    )
    figures["raft_encode"] = measure(
        "Raft AppendEntries build block + encode", raft_encode, count, repeat, fresh_pool_txs
    )
    figures["raft_decode"] = measure(
        "Raft AppendEntries decode + invalid", raft_decode, count, repeat
    )
    figures["hashes"] = measure(
        "block hash + tx hashes + Merkle (fresh Block)", hashes, count, repeat, fresh_copy
    )
    figures["p2p"] = measure("p2p frame + seal + open + records", p2p, count, repeat)
    figures["results"] = measure(
        "results root + encode_results", results_work, count, repeat, fresh_results
    )
    figures["commit_block"] = measure_commit(bench, block, results, count, repeat)
    sustained = measure_sustained_commits(block, results, bench.seal_for(block), 30, repeat)
    assert decode_block(block.encode()) == block
    total = sum(figures.values())
    print(f"{'total (sum, sustained commits not included)':<46} {total:7.2f} us/tx")
    figures["sustained_commits"] = sustained
    return figures


def measure_commit(
    bench: Bench, block: Block, results: list[TxResult], count: int, repeat: int
) -> float:
    """The executor's store side (encode block, seal, results; commit_block, synced) for a
    block whose hashes are known (execution needed them), on a real LevelDB store."""
    writes = state_writes_for(block)
    seal = bench.seal_for(block)
    with tempfile.TemporaryDirectory() as directory:
        store = LevelDbChainStore(directory)
        store.set_genesis(genesis_hash=b"\x02" * 32, app_hash=b"\x03" * 32)
        height = [0]

        def decoded_block() -> tuple[Block, tuple[bytes, ...]]:
            fresh = decode_block(block.encode())  # as received: hashes memoised by decode
            height[0] += 1
            salted = tuple(_salted(h, height[0]) for h in fresh.tx_hashes())
            return fresh, salted

        def commit(prepared: tuple[Block, tuple[bytes, ...]]) -> None:
            fresh, salted = prepared
            fresh.tx_hashes()
            store.commit_block(
                BlockCommit(
                    height=height[0],
                    block_hash=hashlib.sha256(b"%d" % height[0]).digest(),
                    block=fresh.encode(),
                    seal=seal.encode(),
                    tx_hashes=salted,
                    results=encode_results(results),
                    results_root=b"\x04" * 32,
                    app_hash=b"\x05" * 32,
                    state_writes=writes,
                )
            )

        figure = measure(
            "executor store side + commit_block (synced)",
            commit,
            count,
            repeat,
            decoded_block,
        )
        store.close()
    return figure


def measure_sustained_commits(
    block: Block, results: list[TxResult], seal: Seal, blocks: int, repeat: int
) -> float:
    """`blocks` commits in a row on a fresh store, then close (which waits for LevelDB's
    memtable flushes and compactions, whose CPU is the node's too)."""
    encoded, sealed, results_bytes = block.encode(), seal.encode(), encode_results(results)
    writes = state_writes_for(block)

    def commits() -> list[BlockCommit]:
        made = []
        for height in range(1, blocks + 1):
            tag = height.to_bytes(4, "big")
            made.append(
                BlockCommit(
                    height=height,
                    block_hash=hashlib.sha256(tag).digest(),
                    block=encoded,
                    seal=sealed,
                    tx_hashes=tuple(_salted(h, height) for h in block.tx_hashes()),
                    results=results_bytes,
                    results_root=b"\x04" * 32,
                    app_hash=b"\x05" * 32,
                    state_writes={key + tag: value for key, value in writes.items()},
                )
            )
        return made

    def run(made: list[BlockCommit]) -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = LevelDbChainStore(directory)
            store.set_genesis(genesis_hash=b"\x02" * 32, app_hash=b"\x03" * 32)
            for commit in made:
                store.commit_block(commit)
            store.close()

    return measure(
        f"{blocks} x commit_block + close (compactions)",
        run,
        blocks * len(block.txs),
        repeat,
        commits,
    )


def _salted(tx_hash: bytes, height: int) -> bytes:
    """A distinct tx hash per repetition (a hash is indexed once); cost outside the store is
    the same for every version of the code."""
    return tx_hash if height == 1 else tx_hash[:-4] + height.to_bytes(4, "big")


STORE_LOAD_WINDOW_TXS = 200_000  # txs per printed window
STORE_LOAD_SIGNERS = 16


def store_load(total_txs: int, block_txs: int) -> None:
    """A long anchor-shaped load on the real LevelDbChainStore, from an empty store, with no
    execution around it: per tx the two reads execution makes of keys the store never held
    (a replay key, a document key) and, per block, one commit_block with 250 B/tx of block,
    the tx index and three state writes per tx. Prints, per window of txs, the reads' and
    commits' CPU per tx (this thread) and LevelDB's background CPU (the rest of the
    process): compaction cost depends on how large the store has grown."""
    rng = random.Random(7)
    block_bytes, results = rng.randbytes(250 * block_txs), rng.randbytes(50 * block_txs)
    window = {"reads": 0.0, "commits": 0.0}
    with tempfile.TemporaryDirectory() as directory:
        store = LevelDbChainStore(directory)
        store.set_genesis(genesis_hash=b"\x02" * 32, app_hash=b"\x03" * 32)
        process_started, thread_started = time.process_time(), time.thread_time()
        for height in range(1, total_txs // block_txs + 1):
            started = time.thread_time()
            writes = _read_and_write_anchors(store, rng, height, block_txs)
            window["reads"] += time.thread_time() - started
            commit = BlockCommit(
                height=height,
                block_hash=rng.randbytes(32),
                block=block_bytes,
                seal=bytes(200),
                tx_hashes=[rng.randbytes(32) for _ in range(block_txs)],
                results=results,
                results_root=bytes(32),
                app_hash=bytes(32),
                state_writes=writes,
            )
            started = time.thread_time()
            store.commit_block(commit)
            window["commits"] += time.thread_time() - started
            done = height * block_txs
            if done % STORE_LOAD_WINDOW_TXS == 0 or done + block_txs > total_txs:
                process_now, thread_now = time.process_time(), time.thread_time()
                background = (process_now - process_started) - (thread_now - thread_started)
                txs = done % STORE_LOAD_WINDOW_TXS or STORE_LOAD_WINDOW_TXS
                figures = {**window, "LevelDB background": background}
                shown = ", ".join(f"{name} {cpu / txs * 1e6:5.1f}" for name, cpu in figures.items())
                print(f"txs up to {done:9,d}: {shown} us/tx")
                window = {"reads": 0.0, "commits": 0.0}
                process_started, thread_started = process_now, thread_now
        store.close()


def _read_and_write_anchors(
    store: LevelDbChainStore, rng: random.Random, height: int, block_txs: int
) -> dict[bytes, bytes | None]:
    """A block of anchors' state reads (both keys absent) and state writes, as execution
    makes them: replay key, document record, issuer-listing row."""
    writes: dict[bytes, bytes | None] = {}
    for index in range(block_txs):
        number = (height - 1) * block_txs + index
        signer = hashlib.sha256(b"signer %d" % (number % STORE_LOAD_SIGNERS)).digest()
        replay = b"tx/replay/" + signer + (number // STORE_LOAD_SIGNERS).to_bytes(8, "big")
        document = rng.randbytes(32)
        assert store.state_get(replay) is None
        assert store.state_get(b"notary/doc/" + document) is None
        cursor = height.to_bytes(8, "big") + index.to_bytes(4, "big") + bytes(2)
        writes[replay] = height.to_bytes(8, "big")
        writes[b"notary/doc/" + document] = rng.randbytes(230)
        writes[b"notary/issuer/" + signer + cursor] = document
    return writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--store-load",
        type=int,
        metavar="TXS",
        help="instead: a synthetic anchor load of TXS txs on the store, CPU per window",
    )
    args = parser.parse_args()
    if args.store_load:
        store_load(args.store_load, args.txs)
        return
    bench = Bench(args.txs)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_all(bench, args.repeat)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    else:
        run_all(bench, args.repeat)


if __name__ == "__main__":
    main()
