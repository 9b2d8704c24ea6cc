"""Per-tx bookkeeping (bench/ledger.py): commit latency from NewBlock events, first
arrival wins across nodes, refusals by reason, warm-up exclusion."""

from __future__ import annotations

import pytest

from bench.ledger import Ledger


def hashes(count: int) -> list[str]:
    return [f"{i:064x}" for i in range(count)]


def block(height: int, tx_hashes: list[str], num_txs: int | None = None) -> dict[str, object]:
    return {
        "height": height,
        "tx_hashes": tx_hashes,
        "num_txs": len(tx_hashes) if num_txs is None else num_txs,
    }


def test_latency_is_first_commit_event_minus_ideal_send_time() -> None:
    names = hashes(3)
    ledger = Ledger(names)
    ledger.sent_at(0, 0.0)
    ledger.sent_at(1, 0.5)
    ledger.sent_at(2, 1.0)
    assert ledger.block_seen(0.8, block(1, names[:2]), node="node0") == [0, 1]
    assert ledger.block_seen(1.25, block(2, names[2:]), node="node0") == [2]
    assert ledger.latencies_s() == pytest.approx([0.8, 0.3, 0.25])
    assert ledger.committed == 3
    assert ledger.pending == 0
    assert ledger.height_max == 2


def test_the_same_block_from_a_second_node_adds_nothing() -> None:
    names = hashes(2)
    ledger = Ledger(names)
    ledger.sent_at(0, 0.0)
    ledger.sent_at(1, 0.0)
    ledger.block_seen(0.1, block(5, names), node="node1")
    assert ledger.block_seen(0.3, block(5, names), node="node0") == []
    assert ledger.latencies_s() == pytest.approx([0.1, 0.1])
    assert len(ledger.blocks) == 1
    assert ledger.blocks[0].node == "node1"


def test_foreign_txs_and_empty_blocks_are_counted_but_not_ours() -> None:
    names = hashes(1)
    ledger = Ledger(names)
    ledger.sent_at(0, 0.0)
    ledger.block_seen(0.2, block(1, [*names, "f" * 64]), node="node0")
    ledger.block_seen(0.3, block(2, []), node="node0")
    assert ledger.committed == 1
    assert ledger.foreign_txs == 1
    assert [(b.height, b.txs, b.ours) for b in ledger.blocks] == [(1, 2, 1), (2, 0, 0)]


def test_refused_txs_never_count_as_committed_and_keep_a_sample_per_reason() -> None:
    names = hashes(3)
    ledger = Ledger(names)
    for index in range(3):
        ledger.sent_at(index, 0.0)
    ledger.refused(0, "mempool:8", "mempool full")
    ledger.refused(1, "mempool:8", "mempool full again")
    ledger.refused(1, "mempool:8", "a second answer for the same tx is ignored")
    assert ledger.rejected == {"mempool:8": 2}
    assert ledger.reject_samples == {"mempool:8": "mempool full"}
    assert ledger.block_seen(1.0, block(1, names), node="node0") == [2]
    assert ledger.committed == 1


def test_warmup_excludes_txs_sent_before_it() -> None:
    names = hashes(2)
    ledger = Ledger(names)
    ledger.sent_at(0, 0.5)
    ledger.sent_at(1, 2.0)
    ledger.block_seen(2.5, block(1, names), node="node0")
    assert ledger.latencies_s(sent_after_s=1.0) == pytest.approx([0.5])


def test_sending_a_tx_twice_is_a_bug() -> None:
    ledger = Ledger(hashes(1))
    ledger.sent_at(0, 0.0)
    with pytest.raises(AssertionError, match="sent twice"):
        ledger.sent_at(0, 0.1)


def test_malformed_events_are_counted_not_fatal() -> None:
    names = hashes(1)
    ledger = Ledger(names)
    ledger.sent_at(0, 0.0)
    for bad in (
        {"height": "7", "tx_hashes": names},
        {"height": 7},
        {"height": 7, "tx_hashes": names, "num_txs": "many"},
        {},
    ):
        assert ledger.block_seen(0.1, bad, node="node0") == []
    assert ledger.malformed_events == 4
    assert ledger.pending == 1
    assert ledger.block_seen(0.2, block(7, [*names, 5]), node="node0") == [0]  # type: ignore[list-item]


def test_reasons_are_bounded() -> None:
    names = hashes(100)
    ledger = Ledger(names)
    for index in range(100):
        ledger.sent_at(index, 0.0)
        ledger.refused(index, f"app:{index}", "x")
    assert len(ledger.rejected) == 65  # 64 distinct reasons, then "other"
    assert ledger.rejected["other"] == 36
    assert len(ledger.reject_samples) == 32
