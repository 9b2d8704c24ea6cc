"""Raft clusters as real node processes (`seoulchain cluster up --consensus raft`): 3 and 5
nodes commit; kill -9 of the leader gives a new leader and loses nothing committed; the
killed node, started again, catches up. Times are logged, never asserted."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from node import cluster
from tests.node.test_cluster import free_base_port, run

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)


def _consensus(state: cluster.NodeState) -> dict[str, Any]:
    status = state.info.get("status")
    if not isinstance(status, dict):
        return {}
    consensus = status.get("consensus", {})
    return consensus if isinstance(consensus, dict) else {}


def _leader(net: Path) -> tuple[int, int] | None:
    """(node index, term) of the one live node that says it leads, if exactly one does."""
    leaders = [
        (index, int(_consensus(state).get("round", 0)))
        for index, state in enumerate(cluster.cluster_status(net))
        if state.alive and _consensus(state).get("role") == "leader"
    ]
    return leaders[0] if len(leaders) == 1 else None


def _wait(predicate: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def _anchor(capsys: pytest.CaptureFixture[str], net: Path, *, node: int, doc: str) -> None:
    code, out, err = run(
        capsys, "notary", "anchor", "--key", str(net / "agencies" / "agency0.json"),
        "--hash", doc, "--type", "permit", "--home", str(net / f"node{node}"), "--wait",
    )  # fmt: skip
    assert code == 0, out + err


def _height(capsys: pytest.CaptureFixture[str], net: Path, node: int) -> int:
    state = cluster.cluster_status(net)[node]
    status = state.info.get("status")
    if not isinstance(status, dict):
        return -1
    return int(status.get("sync_info", {}).get("latest_block_height", -1))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("count", [3, 5])
def test_raft_process_cluster_survives_kill_9_of_the_leader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int
) -> None:
    net = tmp_path / "net"
    base = str(free_base_port(8 * count + 1))
    try:
        code, _out, err = run(
            capsys, "cluster", "up", "--dir", str(net), "--nodes", str(count),
            "--consensus", "raft", "--base-port", base, "--timeout", "60",
        )  # fmt: skip
        assert code == 0, err
        _anchor(capsys, net, node=0, doc="aa" * 32)
        found = _wait(lambda: _leader(net), 20)
        assert found, "no leader"
        leader, term = found
        pid = cluster.read_pid(net / f"node{leader}")
        assert pid is not None
        assert cluster.is_our_node(pid, (net / f"node{leader}").resolve())
        committed = _height(capsys, net, leader)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        found = _wait(lambda: (lead := _leader(net)) is not None and lead[0] != leader and lead, 30)
        assert found, "no new leader after kill -9"
        log.info("new leader %s %.2f s after kill -9", found, time.monotonic() - killed)
        assert found[1] > term
        other = (leader + 1) % count
        _anchor(capsys, net, node=other, doc="bb" * 32)
        cluster.cluster_up(net, nodes=count, consensus="raft", timeout_s=60)  # restarts it
        target = _height(capsys, net, other)
        assert _wait(lambda: _height(capsys, net, leader) >= target, 30), "no catch-up"
        assert _height(capsys, net, leader) >= committed
    finally:
        cluster.cluster_down(net, grace_s=10.0)
