"""--fault parsing and the stall/recovery figures of a kill (bench/faults.py)."""

from __future__ import annotations

import pytest

from bench import faults
from bench.ledger import BlockSeen


def test_parse_fault() -> None:
    assert faults.parse_fault("kill-primary@10") == faults.FaultSpec("kill-primary", 10.0)
    assert faults.parse_fault("kill-primary@2.5").at_s == 2.5
    for bad in ("kill-primary", "kill-primary@", "kill-all@3", "kill-primary@-1"):
        with pytest.raises(faults.FaultError, match="kill-primary@SECONDS"):
            faults.parse_fault(bad)


def blocks(times: list[float]) -> list[BlockSeen]:
    return [BlockSeen(t, i + 1, 10, 10, "node1") for i, t in enumerate(times)]


def killed_at(at_s: float) -> faults.FaultRecord:
    record = faults.FaultRecord(faults.FaultSpec("kill-primary", at_s))
    record.killed_node, record.killed_pid, record.killed_at_s = "node0", 99, at_s
    return record


def test_gap_and_recovery_after_a_view_change() -> None:
    seen = blocks([4.0, 4.5, 4.9, 7.4, 7.5, 7.6])  # killed at 5.0, view change until 7.4
    result = faults.analyse(killed_at(5.0), seen, send_end_s=10.0)
    assert result["no_commit_gap_s"] == pytest.approx(2.5)  # 4.9 -> 7.4
    assert result["recovery_s"] == pytest.approx(2.4)  # 5.0 -> 7.4
    assert result["recovered"] is True


def test_no_commit_after_the_kill_is_reported_as_not_recovered() -> None:
    result = faults.analyse(killed_at(5.0), blocks([4.0, 4.8]), send_end_s=10.0)
    assert result["recovered"] is False
    assert result["recovery_s"] is None
    assert result["no_commit_gap_s"] == pytest.approx(5.2)


def test_a_fault_that_was_not_carried_out_has_no_figures() -> None:
    record = faults.FaultRecord(faults.FaultSpec("kill-primary", 3.0), error="no leader")
    result = faults.analyse(record, blocks([1.0, 5.0]), send_end_s=10.0)
    assert result["error"] == "no leader"
    assert result["no_commit_gap_s"] is None
