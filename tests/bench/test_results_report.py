"""results.json schema, report.md and PNG plots from a canned run (no cluster needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import plots, report, results


def test_canned_document_matches_the_schema(canned_document: dict[str, Any]) -> None:
    assert results.validate(canned_document) == []


def test_schema_problems_are_named(canned_document: dict[str, Any]) -> None:
    del canned_document["environment"]
    del canned_document["runs"][1]["latency"]
    canned_document["version"] = 99
    problems = results.validate(canned_document)
    assert "missing top-level field 'environment'" in problems
    assert "runs[1] missing 'latency'" in problems
    assert any("version is 99" in p for p in problems)


def test_write_round_trips_and_refuses_a_bad_document(
    canned_document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "results.json"
    results.write(path, canned_document)
    assert json.loads(path.read_text()) == canned_document
    del canned_document["runs"]
    with pytest.raises(AssertionError, match="schema"):
        results.write(path, canned_document)


def test_sweep_section_marks_the_saturated_rate(canned_document: dict[str, Any]) -> None:
    sweep = canned_document["sweep"]
    assert sweep["saturation_index"] == 1  # 610 of 900 offered is under 90%
    assert sweep["saturation_offered_tps"] == 900.0
    assert sweep["max_committed_tps"] == 610.0


def test_environment_names_the_machine() -> None:
    environment = results.environment()
    assert environment["cpu_count"] >= 1
    assert environment["python"].count(".") == 2
    assert len(environment["load_average"]) == 3
    assert environment["busiest_processes"]
    # libsodium verifies in tens of microseconds on any machine that runs a node.
    assert 1.0 < environment["verify_us"] < 5_000.0


def test_report_names_the_machines_speed_when_the_results_have_it(
    canned_document: dict[str, Any],
) -> None:
    assert "Ed25519 verify" not in report.render(canned_document, plots=[])  # minor < 5
    canned_document["environment"]["verify_us"] = 61.25
    text = report.render(canned_document, plots=[])
    assert "load average 1.00 / 1.00 / 1.00, Ed25519 verify 61.2 µs" in text


def test_report_shows_the_figures_of_each_run(canned_document: dict[str, Any]) -> None:
    text = report.render(canned_document, plots=["sweep.png"])
    assert "| open 300/s | 300 tx/s | 300.0 | 299.0 | 45.0 | 70.0 | 90.0 | 108.0 |" in text
    assert "mempool:8: 3" in text
    assert "Saturation at 900 tx/s offered" in text
    assert "← saturated" in text
    assert "![sweep.png](sweep.png)" in text
    assert "all nodes agree" in text
    assert "| node0 | 0.60 | 0.4 | 52.0 | 80 | 9.0 | 4.0 | 0 |" in text


def test_report_flags_disagreement_and_a_failed_recovery(canned_document: dict[str, Any]) -> None:
    run = canned_document["runs"][0]
    run["consistency"]["same_app_hash"] = False
    run["fault"] = {
        "kind": "kill-primary",
        "at_s": 3.0,
        "killed_node": "node0",
        "killed_pid": 1,
        "killed_at_s": 3.01,
        "no_commit_gap_s": 2.0,
        "recovery_s": None,
        "recovered": False,
        "error": None,
    }
    text = report.render(canned_document)
    assert "NODES DISAGREE OR LAG" in text
    assert "NO COMMITS AFTER THE KILL" in text


def test_plots_are_written_as_png(canned_document: dict[str, Any], tmp_path: Path) -> None:
    names = plots.draw_all(canned_document, tmp_path)
    assert names == ["latency_cdf.png", "throughput.png", "mempool_blocks.png", "sweep.png"]
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
