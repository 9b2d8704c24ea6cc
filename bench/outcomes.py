"""Execution outcomes of committed txs: which were refused by the services (code != 0), per
kind and code, read after the run from `block_results` of the blocks that held our txs.

Why after the run and from block_results: a commit seen on the NewBlock stream says nothing
about the result, and a `Tx` event subscription would carry one event per tx (its bounded
queue closes on a burst of a 1,000-tx block). One block_results call per block with our txs
costs a few milliseconds each, outside the measured window. Bounded: at most
BLOCKS_CHECKED_MAX calls and CHECK_TIMEOUT_S seconds; what was not checked is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.ledger import Ledger
from node.client import RpcClient, RpcError, RpcTransportError

log = logging.getLogger(__name__)

BLOCKS_CHECKED_MAX = 20_000
CHECK_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 10.0
SAMPLE_LOG_CHARS_MAX = 200
SAMPLES_MAX = 32


@dataclass(slots=True)
class Outcomes:
    """Counts of committed txs by execution result."""

    checked_txs: int = 0
    checked_blocks: int = 0
    unchecked_blocks: int = 0  # block_results failed, or a bound was reached
    refused: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> code -> n
    samples: dict[str, str] = field(default_factory=dict)  # "kind:code" -> first log
    # our committed txs by index: True if executed with code 0 (absent: unknown)
    succeeded: dict[int, bool] = field(default_factory=dict)

    @property
    def refused_total(self) -> int:
        return sum(sum(codes.values()) for codes in self.refused.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "checked_txs": self.checked_txs,
            "checked_blocks": self.checked_blocks,
            "unchecked_blocks": self.unchecked_blocks,
            "refused_total": self.refused_total,
            "refused": {kind: dict(sorted(codes.items())) for kind, codes in self.refused.items()},
            "samples": self.samples,
        }

    def record(self, kind: str, result: Any, index: int) -> None:
        code = result.get("code") if isinstance(result, dict) else None
        self.checked_txs += 1
        self.succeeded[index] = code == 0
        if code == 0:
            return
        codes = self.refused.setdefault(kind, {})
        codes[str(code)] = codes.get(str(code), 0) + 1
        sample = f"{kind}:{code}"
        if sample not in self.samples and len(self.samples) < SAMPLES_MAX:
            log_text = result.get("log", "") if isinstance(result, dict) else repr(result)
            self.samples[sample] = str(log_text)[:SAMPLE_LOG_CHARS_MAX]


async def check(client: RpcClient, ledger: Ledger, kinds: Sequence[str]) -> Outcomes:
    """Read the result of every committed tx of `ledger` (kinds[i]: tx i's kind)."""
    outcomes = Outcomes()
    heights = sorted(ledger.positions)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            for height in heights[:BLOCKS_CHECKED_MAX]:
                await _check_block(client, height, ledger.positions[height], kinds, outcomes)
    except TimeoutError:
        log.warning("execution results: stopped after %g s", CHECK_TIMEOUT_S)
    outcomes.unchecked_blocks = len(heights) - outcomes.checked_blocks
    return outcomes


async def _check_block(
    client: RpcClient,
    height: int,
    positions: list[tuple[int, int]],
    kinds: Sequence[str],
    outcomes: Outcomes,
) -> None:
    try:
        answer = await client.call("block_results", {"height": height}, timeout_s=CALL_TIMEOUT_S)
        results = answer["txs_results"] if isinstance(answer, dict) else None
    except (RpcError, RpcTransportError, KeyError) as error:
        log.warning("block_results %d: %s", height, error)
        return
    if not isinstance(results, list):
        log.warning("block_results %d: unexpected answer", height)
        return
    outcomes.checked_blocks += 1
    for position, index in positions:
        result = results[position] if position < len(results) else None
        outcomes.record(kinds[index], result, index)
