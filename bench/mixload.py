"""Signing a mixed workload: plan it (bench/mix.py), give each signer its nonces, sign in the
pool, and slice the result into setup stages and per-run lists.

Nonces: every signer (agency or citizen) gets a random 40-bit base, as in the pure load, and
counts up in draft order: setup first, then the runs. Elections are signed later, at setup
time (their window depends on the height then), with random 63-bit nonces.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench import mix, txgen
from protocol.crypto import SigningKey

log = logging.getLogger(__name__)

FILLER_TXS = 64  # anchors that push the height up to the elections' start, if needed
ELECTION_SPAN_HEIGHTS = 10_000_000  # ballots stay open through any run
NONCE_RANDOM_BITS = 63
FILLER_TX_BYTES = 200  # no padding: the smallest anchor


@dataclass(frozen=True, slots=True)
class MixLoad:
    setup: list[list[txgen.SignedTx]]  # stages, each committed before the next
    per_run: list[list[txgen.SignedTx]]
    fillers: list[txgen.SignedTx]
    plan: mix.MixPlan
    seeds: list[bytes]  # by roster slot
    spec: txgen.LoadSpec
    sign_seconds: float
    workers: int

    def sign_elections(self, start_height: int) -> list[txgen.SignedTx]:
        """Every election's vote.create, window [start_height, +ELECTION_SPAN_HEIGHTS],
        fresh random nonces (a refused attempt consumed its nonce on chain)."""
        drafts = self.plan.election_drafts(start_height, start_height + ELECTION_SPAN_HEIGHTS)
        with_nonces = [(draft.signer, _random_nonce(), draft.kind, draft.body) for draft in drafts]
        return txgen.sign_draft_chunk(
            self.spec.chain_id, self.spec.expiry_height, self.seeds, with_nonces
        )

    def section(self) -> dict[str, Any]:
        """What results.json's `signing.mix` records about the workload."""
        run_txs = [tx for txs in self.per_run for tx in txs]
        return {
            "run_kinds": _count_kinds(run_txs),
            "setup_stages": [len(stage) for stage in self.setup],
            "setup_kinds": _count_kinds([tx for stage in self.setup for tx in stage]),
            "elections": len(self.plan.election_ids),
            "citizens": len(self.plan.roster.citizens),
            "agencies": len(self.plan.roster.agencies),
        }


def _random_nonce() -> int:
    return int.from_bytes(os.urandom(8), "big") >> (64 - NONCE_RANDOM_BITS)


def _count_kinds(txs: Sequence[txgen.SignedTx]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for tx in txs:
        counted[tx.kind] = counted.get(tx.kind, 0) + 1
    return dict(sorted(counted.items()))


def prepare(
    spec: txgen.LoadSpec,
    keys: Sequence[SigningKey],
    weights: dict[str, int],
    counts: Sequence[int],
    *,
    workers: int,
) -> MixLoad:
    """Plan sum(counts) run txs of the mix, sign setup + run txs, slice per run."""
    total = sum(counts)
    citizen_seeds = mix.citizen_seeds(spec.run_tag, mix.citizens_needed(weights, total))
    citizens = [SigningKey(seed) for seed in citizen_seeds]
    roster = mix.Roster(
        tuple(key.public_key for key in keys), tuple(key.public_key for key in citizens)
    )
    plan = mix.build_plan(
        weights,
        total,
        roster=roster,
        run_tag=spec.run_tag,
        anchor=txgen.anchor_maker(spec, keys[0]),
    )
    seeds = [key.seed for key in keys] + citizen_seeds
    drafts = [draft for stage in plan.setup for draft in stage] + plan.run
    signed = txgen.sign_drafts(spec, seeds, with_nonces(drafts, len(seeds)), workers=workers)
    txs, position = signed.txs, 0
    setup: list[list[txgen.SignedTx]] = []
    for stage in plan.setup:
        setup.append(txs[position : position + len(stage)])
        position += len(stage)
    per_run = []
    for count in counts:
        per_run.append(txs[position : position + count])
        position += count
    assert position == len(txs)
    filler_spec = txgen.LoadSpec(
        chain_id=spec.chain_id,
        expiry_height=spec.expiry_height,
        tx_bytes=FILLER_TX_BYTES,
        run_tag=f"{spec.run_tag}/filler",
    )
    fillers = txgen.sign_all(filler_spec, keys, FILLER_TXS, workers=0).txs
    return MixLoad(setup, per_run, fillers, plan, seeds, spec, signed.sign_seconds, signed.workers)


def with_nonces(drafts: Sequence[mix.Draft], signers: int) -> list[txgen.NonceDraft]:
    """Each signer's drafts get consecutive nonces from a random per-signer base."""
    bases = txgen.nonce_bases(signers)
    used = [0] * signers
    numbered: list[txgen.NonceDraft] = []
    for draft in drafts:
        numbered.append(
            (draft.signer, bases[draft.signer] + used[draft.signer], draft.kind, draft.body)
        )
        used[draft.signer] += 1
    assert max(used, default=0) < 1 << 20, "a signer's nonces would reach the next base"
    return numbered
