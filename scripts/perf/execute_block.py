"""Micro-benchmark: CPU per tx of `check_tx` and `execute_block`, as the node runs them.

One process, no network: a genesis of 16 agencies holding every role, the real
`LevelDbChainStore` in a temp dir behind the node's `StoreStateView`, and blocks of signed
txs decoded from their wire bytes (the bench's own tx generators). For each of 3 fresh
blocks: `check_tx` of every tx against committed state (as admission does, which also
warms the state-read cache the way it is warm on a real node), then `execute_block`, then
the block's writes are committed so the next block starts from the new state. Reports the
median over the blocks of CPU microseconds per tx (`time.process_time`).

`--cold` measures what a PBFT backup does instead: no check_tx
first, so the tx's replay key, its document's key and its body decode all miss every cache,
on a store already holding `--prefill` txs of committed state across several LevelDB
levels; blocks run through the node's real `BlockExecutor.execute` (links, results, tx
index, one synced batch). It reports execute and commit CPU per tx of the calling thread
separately, and LevelDB's background (compaction) CPU over the whole run.

    .venv/bin/python scripts/perf/execute_block.py            # 2,000 notary anchors
    .venv/bin/python scripts/perf/execute_block.py --mix      # notary/asset/fund/...
    .venv/bin/python scripts/perf/execute_block.py --profile  # cProfile of one execute
    .venv/bin/python scripts/perf/execute_block.py --cold --blocks 20 [--template DIR]
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import hashlib
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import mix, txgen
from node.cli_common import known_roles
from node.executor import BlockExecutor, StoreStateView
from protocol.block import decode_block, make_block
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.results import TxResult, encode_results
from protocol.seal import SEAL_QUORUM, Seal
from protocol.sealed import SealedBlock
from protocol.tx import Tx, decode_tx, sign_tx
from services.app import SeoulApplication
from services.genesis import Agency, ServicesGenesis
from services.interface import BlockInfo, BlockOutcome, QueryResult, StateView
from storage.interface import BlockCommit
from storage.leveldb import LevelDbChainStore

CHAIN_ID = "seoul-perf"
AGENCIES = 16
BLOCK_TXS = 2_000
BLOCKS = 3
EXPIRY = 1_000_000
MIX = {"notary": 50, "asset": 10, "fund": 10, "reward": 10, "credential": 10, "vote": 10}


class Chain:
    """The app over a real LevelDB store, committing blocks the way the executor does."""

    def __init__(self, directory: Path, seeds: Sequence[bytes]) -> None:
        self.keys = [SigningKey(seed) for seed in seeds]
        roles = known_roles()
        genesis = ServicesGenesis(
            chain_id=CHAIN_ID,
            agencies=tuple(
                Agency(name=f"Agency {i}", public_key=key.public_key, roles=roles)
                for i, key in enumerate(self.keys)
            ),
        )
        self.app = SeoulApplication(genesis)
        self.store = LevelDbChainStore(directory / "db")
        self.app_hash = self.app.genesis_app_hash()
        self.store.set_genesis(
            genesis_hash=bytes(32), app_hash=self.app_hash, state_writes=self.app.genesis_writes()
        )
        self.state = StoreStateView(self.store)
        self.height = self.store.committed_height()  # a prefilled store (--cold) goes on
        stored_app_hash = self.store.app_hash(self.height)
        assert stored_app_hash is not None
        self.app_hash = stored_app_hash

    def check(self, txs: Sequence[Tx]) -> float:
        started = time.process_time()
        for tx in txs:
            result = self.app.check_tx(tx, self.state, next_height=self.height + 1)
            assert result.ok, result
        return time.process_time() - started

    def execute(
        self,
        txs: Sequence[Tx],
        profile: cProfile.Profile | None = None,
        *,
        block_bytes: bytes = b"block",
    ) -> float:
        height = self.height + 1
        info = BlockInfo(
            chain_id=CHAIN_ID, height=height, time_ms=height * 1000, proposer=bytes(32)
        )
        started = time.process_time()
        if profile is not None:
            profile.enable()
        outcome = self.app.execute_block(info, txs, self.state, prev_app_hash=self.app_hash)
        if profile is not None:
            profile.disable()
        elapsed = time.process_time() - started
        failed = [(i, r) for i, r in enumerate(outcome.results) if not r.ok]
        assert not failed, failed[:3]
        self.store.commit_block(
            BlockCommit(
                height=height,
                block_hash=hashlib.sha256(b"block%d" % height).digest(),
                block=block_bytes,
                seal=b"seal",
                tx_hashes=[tx.hash() for tx in txs],
                results=encode_results(outcome.results),
                results_root=outcome.results_root,
                app_hash=outcome.app_hash,
                state_writes=outcome.writes,
            )
        )
        self.state.forget(outcome.writes)
        self.app_hash, self.height = outcome.app_hash, height
        return elapsed


def anchor_txs(seeds: Sequence[bytes], run_tag: str, count: int) -> list[Tx]:
    spec = txgen.LoadSpec(chain_id=CHAIN_ID, expiry_height=EXPIRY, tx_bytes=250, run_tag=run_tag)
    signed = txgen.sign_chunk(spec, seeds, [0] * len(seeds), 0, count)
    return [decode_tx(base64.b64decode(item.text)) for item in signed]


class Signer:
    def __init__(self, keys: Sequence[SigningKey]) -> None:
        self.keys = list(keys)
        self.nonces = [0] * len(keys)

    def sign(self, drafts: Sequence[mix.Draft]) -> list[Tx]:
        txs = []
        for draft in drafts:
            self.nonces[draft.signer] += 1
            tx = sign_tx(
                self.keys[draft.signer],
                chain_id=CHAIN_ID,
                nonce=self.nonces[draft.signer],
                expiry_height=EXPIRY,
                kind=draft.kind,
                body=draft.body,
            )
            txs.append(decode_tx(tx.encode()))
        return txs


def mixed_blocks(chain: Chain, seeds: Sequence[bytes], blocks: int) -> list[list[Tx]]:
    """Runs the mix's setup stages as unmeasured blocks; the measured blocks' txs."""
    citizens = [SigningKey(seed) for seed in mix.citizen_seeds("perf", mix.CITIZENS_MIN)]
    roster = mix.Roster(
        agencies=tuple(k.public_key for k in chain.keys),
        citizens=tuple(k.public_key for k in citizens),
    )
    signer = Signer([*chain.keys, *citizens])
    count = BLOCK_TXS * blocks
    plan = mix.build_plan(
        MIX, count, roster=roster, run_tag="perf", anchor=lambda j: anchor_body(seeds, j)
    )
    for stage in plan.setup:
        chain.execute(signer.sign(stage))
    chain.execute(signer.sign(plan.election_drafts(chain.height + 2, chain.height + 1000)))
    run = signer.sign(plan.run)
    return [run[i : i + BLOCK_TXS] for i in range(0, count, BLOCK_TXS)]


def anchor_body(seeds: Sequence[bytes], j: int) -> bytes:
    metadata = {"ref": f"{j:09d}", "n00": "x" * 60}
    return txgen.encode_anchor_body(txgen.document_hash("mix", j), "birth-cert", metadata)


# --cold: a backup's execution over a store with history ------------------------------

PREFILL_TXS = 300_000
COLD_BLOCKS = 20
PIPELINE_DEPTH = 2  # the genesis default (node/genesis.py)
PREFILL_NONCE_BASE = 1 << 36  # far from the measured txs' nonces (txgen draws 40-bit bases)
PREFILL_PADDING = 100  # metadata characters that make a prefill tx ~250 bytes
TEMPLATE_FORMAT = 1  # bump when the prefill's contents change: older templates are rebuilt
GC_YOUNG_THRESHOLD = 50_000  # as node/cli.py sets them
GC_OLDER_THRESHOLD = 20
QUIET_CPU_SECONDS = 0.01  # background CPU per half second below which LevelDB counts as idle


class TimedApplication:
    """The application, adding up the calling thread's CPU spent in `execute_block`; the
    rest of `BlockExecutor.execute` is the commit side (hashes, encodings, the batch)."""

    def __init__(self, app: SeoulApplication) -> None:
        self.app = app
        self.execute_seconds = 0.0

    def check_tx(self, tx: Tx, state: StateView, *, next_height: int) -> TxResult:
        return self.app.check_tx(tx, state, next_height=next_height)

    def execute_block(
        self, info: BlockInfo, txs: Sequence[Tx], state: StateView, *, prev_app_hash: bytes
    ) -> BlockOutcome:
        started = time.thread_time()
        try:
            return self.app.execute_block(info, txs, state, prev_app_hash=prev_app_hash)
        finally:
            self.execute_seconds += time.thread_time() - started

    def query(self, path: str, params: Mapping[str, str], state: StateView) -> QueryResult:
        return self.app.query(path, params, state)

    def genesis_app_hash(self) -> bytes:
        return self.app.genesis_app_hash()

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return self.app.genesis_writes()


def prefill(chain: Chain, count: int) -> None:
    """Executes and commits `count` notary anchors from the genesis agencies, the way the
    first blocks did (app.execute_block, then one commit_block per block with the blocks'
    bytes), so the store holds that many txs of real state, tx index and blocks. The txs
    are not signed (execution never looks at a signature; the bytes have the same size)."""
    metadata_padding = txgen.padding(PREFILL_PADDING)
    for start in range(0, count, BLOCK_TXS):
        txs = []
        for number in range(start, min(count, start + BLOCK_TXS)):
            key = chain.keys[number % len(chain.keys)]
            metadata = {**txgen.base_metadata(number), **metadata_padding}
            body = txgen.encode_anchor_body(
                txgen.document_hash("prefill", number),
                txgen.DOC_TYPES[number % len(txgen.DOC_TYPES)],
                metadata,
            )
            txs.append(
                Tx(
                    chain_id=CHAIN_ID,
                    signer=key.public_key,
                    nonce=PREFILL_NONCE_BASE + number // len(chain.keys),
                    expiry_height=EXPIRY,
                    kind=txgen.ANCHOR_KIND,
                    body=body,
                    signature=bytes(64),
                )
            )
        chain.execute(txs, block_bytes=b"".join(tx.encode() for tx in txs))


def prefilled_store(directory: Path, seeds: Sequence[bytes], args: argparse.Namespace) -> None:
    """DIRECTORY/db holding `--prefill` txs of history: built here, or copied from a
    `--template` directory that holds one already (built there on first use)."""
    description = {"format": TEMPLATE_FORMAT, "txs": args.prefill, "block_txs": BLOCK_TXS}
    template = Path(args.template) if args.template else None
    marker = template / "prefill.json" if template else None
    if template and marker and marker.is_file():
        if json.loads(marker.read_text()) == description:
            shutil.copytree(template / "db", directory / "db")
            return
        shutil.rmtree(template / "db", ignore_errors=True)
        marker.unlink()
    started = time.perf_counter()
    chain = Chain(directory, seeds)
    prefill(chain, args.prefill)
    chain.store.close()
    print(f"prefilled {args.prefill} txs in {time.perf_counter() - started:.0f} s")
    if template and marker:
        template.mkdir(parents=True, exist_ok=True)
        shutil.copytree(directory / "db", template / "db")
        marker.write_text(json.dumps(description))


def wait_for_quiet_leveldb() -> None:
    """Until LevelDB's background thread stops compacting what opening left it (the
    memtable recovered from the log is flushed at open): the measured run's compaction
    CPU is then the run's own."""
    while True:
        process, thread = time.process_time(), time.thread_time()
        time.sleep(0.5)
        background = (time.process_time() - process) - (time.thread_time() - thread)
        if background < QUIET_CPU_SECONDS:
            return


def tune_garbage_collector() -> None:
    """The node's collector settings (node/cli.py `_tune_garbage_collector`): with
    CPython's defaults, collections of the prefilled run's objects would land in the
    measured blocks and cost several microseconds per tx that the node does not pay."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_OLDER_THRESHOLD, GC_OLDER_THRESHOLD)


def leveldb_property(store: LevelDbChainStore, name: bytes) -> bytes:
    """One of LevelDB's own properties: a benchmark may look inside the store."""
    value = store._db.get_property(name)
    assert isinstance(value, bytes), name
    return value


def leveldb_levels(store: LevelDbChainStore) -> str:
    counts = [leveldb_property(store, b"leveldb.num-files-at-level%d" % n) for n in range(7)]
    return " ".join(f"L{level}:{int(count)}" for level, count in enumerate(counts) if count)


def sealed_block(chain: Chain, txs: Sequence[Tx], executor: BlockExecutor) -> SealedBlock:
    """The next block as a backup holds it: decoded from its wire bytes (tx hashes and
    encoding memoised), with a seal the executor stores but does not check."""
    height = chain.height + 1
    exec_height, exec_app_hash, exec_results_root = executor.expected_exec_fields(height)
    prev_hash = chain.store.block_hash(chain.height)
    block = make_block(
        chain_id=CHAIN_ID,
        height=height,
        prev_hash=prev_hash if height > 1 and prev_hash is not None else ZERO_HASH,
        time_ms=height * 1000,
        proposer=chain.keys[0].public_key,
        txs=tuple(txs),
        validators_hash=ZERO_HASH,
        exec_height=exec_height,
        exec_app_hash=exec_app_hash,
        exec_results_root=exec_results_root,
    )
    decoded = decode_block(block.encode())
    signatures = tuple((index, bytes([index]) * 64) for index in range(3))
    seal = Seal(
        kind=SEAL_QUORUM, round=0, height=height, block_hash=decoded.hash(), signatures=signatures
    )
    return SealedBlock(block=decoded, seal=seal)


def run_cold(directory: Path, seeds: Sequence[bytes], args: argparse.Namespace) -> None:
    prefilled_store(directory, seeds, args)
    chain = Chain(directory, seeds)
    timed = TimedApplication(chain.app)
    executor = BlockExecutor(
        store=chain.store,
        app=timed,
        chain_id=CHAIN_ID,
        pipeline_depth=PIPELINE_DEPTH,
        state=chain.state,
    )
    spec = txgen.LoadSpec(
        chain_id=CHAIN_ID, expiry_height=EXPIRY, tx_bytes=250, run_tag=f"cold{chain.height}"
    )
    signed = txgen.sign_all(spec, chain.keys, BLOCK_TXS * args.blocks, workers=2).txs
    txs = [decode_tx(base64.b64decode(item.text)) for item in signed]
    tune_garbage_collector()
    wait_for_quiet_leveldb()
    print(f"store at height {chain.height}, LevelDB files {leveldb_levels(chain.store)}")
    executes, commits = [], []
    profile = cProfile.Profile() if args.profile else None
    process_started, thread_started = time.process_time(), time.thread_time()
    window_started = time.clock_gettime(time.CLOCK_MONOTONIC)
    for start in range(0, len(txs), BLOCK_TXS):
        sealed = sealed_block(chain, txs[start : start + BLOCK_TXS], executor)
        timed.execute_seconds = 0.0
        started = time.thread_time()
        if profile is not None and start + BLOCK_TXS >= len(txs):
            profile.enable()
        executed = executor.execute(sealed)
        if profile is not None:
            profile.disable()
        total = time.thread_time() - started
        failed = [r for r in executed.outcome.results if not r.ok]
        assert not failed, failed[:3]
        chain.height, chain.app_hash = sealed.height, executed.outcome.app_hash
        executes.append(timed.execute_seconds / BLOCK_TXS * 1e6)
        commits.append((total - timed.execute_seconds) / BLOCK_TXS * 1e6)
    background = (time.process_time() - process_started) - (time.thread_time() - thread_started)
    window_ended = time.clock_gettime(time.CLOCK_MONOTONIC)
    print(f"cold notary.anchor: {args.blocks} blocks of {BLOCK_TXS} txs through BlockExecutor")
    for name, figures in (("execute", executes), ("commit", commits)):
        print(
            f"{name:10s} median {statistics.median(figures):5.1f} us/tx, "
            f"mean {statistics.mean(figures):5.1f}  {[round(f, 1) for f in figures]}"
        )
    both = [e + c for e, c in zip(executes, commits, strict=True)]
    print(f"{'both':10s} median {statistics.median(both):5.1f} us/tx")
    print(f"LevelDB background CPU {background / len(txs) * 1e6:5.1f} us/tx over the run")
    print(f"LevelDB files after the run {leveldb_levels(chain.store)}")
    print(
        f"measured window {window_started:.3f}..{window_ended:.3f} s CLOCK_MONOTONIC "
        f"(perf record -k CLOCK_MONOTONIC: the samples to keep)"
    )
    if args.leveldb_stats:
        print(leveldb_property(chain.store, b"leveldb.stats").decode())
    chain.store.close()
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", action="store_true", help="a mixed block instead of anchors")
    parser.add_argument("--profile", action="store_true", help="cProfile one execute_block")
    parser.add_argument(
        "--blocks", type=int, help=f"blocks measured (default {BLOCKS}, --cold {COLD_BLOCKS})"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="a backup: no check_tx first, "
        "on a store with --prefill txs of history, through BlockExecutor",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=PREFILL_TXS,
        help=f"--cold: txs of history committed first (default {PREFILL_TXS})",
    )
    parser.add_argument(
        "--template",
        help="--cold: keep the prefilled store in this "
        "directory and copy it on later runs (rebuilt if --prefill changes)",
    )
    parser.add_argument(
        "--leveldb-stats",
        action="store_true",
        help="--cold: print LevelDB's compaction statistics after the run",
    )
    args = parser.parse_args()
    seeds = [hashlib.sha256(b"perf-agency-%d" % i).digest() for i in range(AGENCIES)]
    if args.cold:
        args.blocks = args.blocks or COLD_BLOCKS
        with tempfile.TemporaryDirectory() as directory:
            run_cold(Path(directory), seeds, args)
        return
    args.blocks = args.blocks or BLOCKS
    with tempfile.TemporaryDirectory() as directory:
        chain = Chain(Path(directory), seeds)
        if args.mix:
            blocks = mixed_blocks(chain, seeds, args.blocks)
        else:
            txs = anchor_txs(seeds, "perf", BLOCK_TXS * args.blocks)
            blocks = [txs[i : i + BLOCK_TXS] for i in range(0, len(txs), BLOCK_TXS)]
        checks, executes = [], []
        profile = cProfile.Profile() if args.profile else None
        for number, block in enumerate(blocks):
            for tx in block:
                tx.hash()  # memoised by the mempool and the block's txs root on a node
            checks.append(chain.check(block) / len(block) * 1e6)
            use = profile if number == len(blocks) - 1 else None
            executes.append(chain.execute(block, use) / len(block) * 1e6)
        chain.store.close()
    label = "mixed" if args.mix else "notary.anchor"
    print(f"{label}: {len(blocks)} blocks of {BLOCK_TXS} txs")
    for name, figures in (("check_tx", checks), ("execute_block", executes)):
        print(
            f"{name:13s} median {statistics.median(figures):5.1f} us/tx, "
            f"mean {statistics.mean(figures):5.1f}  {[round(f, 1) for f in figures]}"
        )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
