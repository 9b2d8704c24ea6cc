"""A small parser for the Prometheus text exposition format, and the figures the bench
derives from two scrapes of a node (before and after a run).

Only what the bench reads: `name{label="value",...} number` sample lines; comments, types
and timestamps are skipped. A malformed line is skipped and counted, never fatal: a node's
metrics page is input from outside the bench.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PREFIX = "seoulchain_"
SCRAPE_BYTES_MAX = 4 * 1024 * 1024
LINES_MAX = 50_000

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class Scrape:
    samples: dict[SampleKey, float] = field(default_factory=dict)
    malformed_lines: int = 0

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def total(self, name: str) -> float:
        """Sum of every series of `name` (all label values); 0.0 if absent."""
        return float(sum(v for (n, _), v in self.samples.items() if n == name and math.isfinite(v)))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (sample_name, labels), value in self.samples.items():
            if sample_name != name:
                continue
            key = dict(labels).get(label, "")
            totals[key] = totals.get(key, 0.0) + value
        return totals


def parse(text: str) -> Scrape:
    scrape = Scrape()
    for number, line in enumerate(text.splitlines()):
        if number >= LINES_MAX:
            scrape.malformed_lines += 1
            break
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _parse_line(line)
        if parsed is None:
            scrape.malformed_lines += 1
            continue
        key, value = parsed
        scrape.samples[key] = value
    return scrape


def _parse_line(line: str) -> tuple[SampleKey, float] | None:
    labels: tuple[tuple[str, str], ...] = ()
    if "{" in line:
        name, _, rest = line.partition("{")
        label_text, closing, tail = rest.rpartition("}")
        if not closing:
            return None
        parsed_labels = _parse_labels(label_text)
        if parsed_labels is None:
            return None
        labels = parsed_labels
        value_text = tail.split()
    else:
        parts = line.split()
        name, value_text = parts[0], parts[1:]
    if not name or not value_text:
        return None
    try:
        value = float(value_text[0])
    except ValueError:
        return None
    return (name.strip(), labels), value


def _parse_labels(text: str) -> tuple[tuple[str, str], ...] | None:
    """`a="x",b="y"`; values may hold escaped quotes, commas and braces."""
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        equals = text.find("=", position)
        if equals < 0 or equals + 1 >= len(text) or text[equals + 1] != '"':
            return None
        name = text[position:equals].strip().lstrip(",").strip()
        value_chars: list[str] = []
        cursor = equals + 2
        while cursor < len(text) and text[cursor] != '"':
            if text[cursor] == "\\" and cursor + 1 < len(text):
                cursor += 1
                value_chars.append({"n": "\n"}.get(text[cursor], text[cursor]))
            else:
                value_chars.append(text[cursor])
            cursor += 1
        if cursor >= len(text):
            return None
        pairs.append((name, "".join(value_chars)))
        position = cursor + 1
        while position < len(text) and text[position] in ", ":
            position += 1
    return tuple(sorted(pairs))


# --- what a run did, from a scrape before and one after -----------------------------------


def delta(before: Scrape, after: Scrape, name: str) -> float:
    return after.total(name) - before.total(name)


def histogram_quantile(before: Scrape, after: Scrape, name: str, quantile: float) -> float | None:
    """The `quantile` of what histogram `name` observed between the scrapes, interpolated
    linearly within a bucket as PromQL's histogram_quantile does (so only as fine as the
    buckets); None if it observed nothing. An answer past the last finite bucket is that
    bound (Prometheus does the same)."""
    assert 0.0 < quantile < 1.0
    grown: dict[float, float] = {}
    for (sample_name, labels), value in after.samples.items():
        if sample_name != name + "_bucket":
            continue
        bound_text = dict(labels).get("le")
        try:
            bound = float(bound_text) if bound_text is not None else None
        except ValueError:
            bound = None
        if bound is None:
            continue
        start = before.samples.get((sample_name, labels), 0.0)
        grown[bound] = grown.get(bound, 0.0) + max(0.0, value - start)
    buckets = sorted(grown.items())
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def run_figures(before: Scrape, after: Scrape) -> dict[str, float | dict[str, float] | None]:
    """Counters' growth over the run, per-block ratios (messages and bytes per block), and
    where a block's time goes on this node: from its proposal to its commit (a node's
    own proposals: the primary's or leader's blocks) and its synced store write."""
    blocks = delta(before, after, PREFIX + "consensus_block_txs_count")
    figures: dict[str, float | dict[str, float] | None] = {
        "blocks": blocks,
        "block_txs_sum": delta(before, after, PREFIX + "consensus_block_txs_sum"),
        "view_changes": delta(before, after, PREFIX + "consensus_view_changes_total"),
        "consensus_messages": delta(before, after, PREFIX + "consensus_messages_total"),
        "p2p_bytes_sent": delta(before, after, PREFIX + "p2p_bytes_sent_total"),
        "p2p_bytes_received": delta(before, after, PREFIX + "p2p_bytes_received_total"),
        "p2p_messages": delta(before, after, PREFIX + "p2p_messages_total"),
        "mempool_received": delta(before, after, PREFIX + "mempool_received_total"),
        "signature_checks": delta(before, after, PREFIX + "mempool_signature_checks_total"),
        "rpc_requests": delta(before, after, PREFIX + "rpc_requests_total"),
        "cpu_seconds": delta(before, after, PREFIX + "process_cpu_seconds_total"),
        "rejected_by_reason": _label_delta(
            before, after, PREFIX + "mempool_rejected_total", "reason"
        ),
    }
    per_block = max(blocks, 1.0)
    figures["consensus_messages_per_block"] = _number(figures["consensus_messages"]) / per_block
    figures["p2p_bytes_sent_per_block"] = _number(figures["p2p_bytes_sent"]) / per_block
    # Every node checks every committed tx's signature once; above 1, the rest went to txs
    # that were refused, dropped or still pending (or to a node catching up without them).
    committed = _number(figures["block_txs_sum"])
    figures["signature_checks_per_committed_tx"] = (
        _number(figures["signature_checks"]) / committed if committed > 0 else None
    )
    # One synced consensus write covers every engine output stepped while the previous
    # one was under way (node/driver.py): above 1 per write, group commit is at work.
    persists = delta(before, after, PREFIX + "consensus_persist_outputs_count")
    figures["consensus_persists"] = persists
    figures["consensus_persist_outputs_mean"] = (
        delta(before, after, PREFIX + "consensus_persist_outputs_sum") / persists
        if persists > 0
        else None
    )
    for figure, histogram in (
        ("propose_to_commit", "consensus_commit_seconds"),
        ("store_commit", "storage_commit_seconds"),
        ("consensus_persist", "consensus_persist_seconds"),
    ):
        for quantile, suffix in ((0.5, "p50_s"), (0.99, "p99_s")):
            figures[f"{figure}_{suffix}"] = histogram_quantile(
                before, after, PREFIX + histogram, quantile
            )
    return figures


def _number(value: float | dict[str, float] | None) -> float:
    assert isinstance(value, float)
    return value


def _label_delta(before: Scrape, after: Scrape, name: str, label: str) -> dict[str, float]:
    start: Mapping[str, float] = before.by_label(name, label)
    return {
        key: value - start.get(key, 0.0)
        for key, value in sorted(after.by_label(name, label).items())
        if value - start.get(key, 0.0) > 0
    }
