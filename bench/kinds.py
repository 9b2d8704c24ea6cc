"""Per-kind figures of one run (results.json `runs[].kinds`): for every tx kind sent, how
many were sent, committed, refused at execution, and the steady-state commit latency.
Pure: a ledger, the kinds by tx index and the execution outcomes in, a JSON dict out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import stats
from bench.ledger import Ledger
from bench.outcomes import Outcomes


def kind_figures(
    ledger: Ledger, kinds: Sequence[str], *, warmup_s: float, outcomes: Outcomes | None
) -> dict[str, dict[str, Any]]:
    """{kind: {sent, committed, not_committed, refused_at_execution, latency}}, kinds
    sorted by name; latency as stats.summarize over txs sent after the warm-up."""
    assert len(kinds) == len(ledger.ideal_s)
    sent: dict[str, int] = {}
    committed: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    for index, kind in enumerate(kinds):
        ideal, commit = ledger.ideal_s[index], ledger.commit_s[index]
        if ideal is None:
            continue
        sent[kind] = sent.get(kind, 0) + 1
        if commit is None:
            continue
        committed[kind] = committed.get(kind, 0) + 1
        if ideal >= warmup_s:
            latencies.setdefault(kind, []).append(commit - ideal)
    figures: dict[str, dict[str, Any]] = {}
    for kind in sorted(sent):
        summary = stats.summarize(latencies.get(kind, []))
        refused = (outcomes.refused.get(kind, {}) if outcomes else {}) or {}
        figures[kind] = {
            "sent": sent[kind],
            "committed": committed.get(kind, 0),
            "not_committed": sent[kind] - committed.get(kind, 0),
            "refused_at_execution": sum(refused.values()),
            "refused_by_code": dict(sorted(refused.items())),
            "latency": summary.to_json() if summary else None,
        }
    return figures
