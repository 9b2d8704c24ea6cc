"""Micro-benchmark: CPU per tx of `check_tx` and `execute_block`, as the node runs them.

One process, no network: a genesis of 16 agencies holding every role, the real
`LevelDbChainStore` in a temp dir behind the node's `StoreStateView`, and blocks of signed
txs decoded from their wire bytes (the bench's own tx generators). For each of 3 fresh
blocks: `check_tx` of every tx against committed state (as admission does, which also
warms the state-read cache the way it is warm on a real node), then `execute_block`, then
the block's writes are committed so the next block starts from the new state. Reports the
median over the blocks of CPU microseconds per tx (`time.process_time`).

    .venv/bin/python scripts/perf/execute_block.py            # 2,000 notary anchors
    .venv/bin/python scripts/perf/execute_block.py --mix      # notary/asset/fund/...
    .venv/bin/python scripts/perf/execute_block.py --profile  # cProfile of one execute
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import mix, txgen
from node.cli_common import known_roles
from node.executor import StoreStateView
from protocol.crypto import SigningKey
from protocol.tx import Tx, decode_tx, sign_tx
from services.app import SeoulApplication
from services.genesis import Agency, ServicesGenesis
from services.interface import BlockInfo
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
        self.height = 0

    def check(self, txs: Sequence[Tx]) -> float:
        started = time.process_time()
        for tx in txs:
            result = self.app.check_tx(tx, self.state, next_height=self.height + 1)
            assert result.ok, result
        return time.process_time() - started

    def execute(self, txs: Sequence[Tx], profile: cProfile.Profile | None = None) -> float:
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
                block=b"block",
                seal=b"seal",
                tx_hashes=[tx.hash() for tx in txs],
                results=b"",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", action="store_true", help="a mixed block instead of anchors")
    parser.add_argument("--profile", action="store_true", help="cProfile one execute_block")
    parser.add_argument("--blocks", type=int, default=BLOCKS, help="blocks measured (>= 1)")
    args = parser.parse_args()
    seeds = [hashlib.sha256(b"perf-agency-%d" % i).digest() for i in range(AGENCIES)]
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
