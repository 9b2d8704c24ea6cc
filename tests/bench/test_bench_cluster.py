"""Cluster handling without running nodes (bench/cluster.py): reading a real testnet
directory, free ports, and refusing to signal a PID that is not that home's node."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest

from bench import cluster, ports
from node.cli_init import make_testnet


def test_attach_directory_reads_rpc_and_metrics_addresses_of_each_home(tmp_path: Path) -> None:
    make_testnet(tmp_path, nodes=3, consensus="pbft", base_port=41000, agencies=2)
    attached = cluster.attach_directory(tmp_path)
    assert attached.owned is False
    assert [node.name for node in attached.nodes] == ["node0", "node1", "node2"]
    assert attached.nodes[2].rpc_url == "http://127.0.0.1:41021"
    assert attached.nodes[2].metrics_url == "http://127.0.0.1:41022/metrics"
    assert attached.nodes[0].pid() is None  # never started: no node.pid


def test_a_recorded_pid_that_is_not_this_homes_node_is_never_signalled(tmp_path: Path) -> None:
    make_testnet(tmp_path, nodes=1, consensus="solo", base_port=41100)
    (node,) = cluster.attach_directory(tmp_path).nodes
    (tmp_path / "node0" / "node.pid").write_text(f"{os.getpid()}\n")  # this pytest process
    assert node.pid() is None
    with pytest.raises(cluster.ClusterError, match="no running PID"):
        cluster.kill_node(node)
    assert node.killed is False


def test_teardown_of_an_attached_cluster_stops_nothing(tmp_path: Path) -> None:
    make_testnet(tmp_path, nodes=1, consensus="solo", base_port=41200)
    assert "left running" in cluster.teardown(cluster.attach_directory(tmp_path))


def test_attach_urls_and_missing_homes() -> None:
    attached = cluster.attach_urls(["127.0.0.1:1", "http://127.0.0.1:2"], ["http://m/metrics"])
    assert [n.rpc_url for n in attached.nodes] == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert [n.metrics_url for n in attached.nodes] == ["http://m/metrics", None]
    with pytest.raises(cluster.ClusterError):
        cluster.attach_urls([])


class ScriptedRandom(random.Random):
    """Offers the given bases in order (the first holds a busy port)."""

    def __init__(self, bases: list[int]) -> None:
        super().__init__(0)
        self._bases = iter(bases)

    def randrange(self, *args: object, **kwargs: object) -> int:
        return next(self._bases)


def unclaimed_free_bases(count: int) -> list[int]:
    """Bases whose two-node port blocks are free and not handed out yet, left unclaimed."""
    start, stop = ports.listen_range()
    bases = []
    for base in range(stop - 100, start, -100):
        block = [base + offset for offset in range(13)]
        if all(ports.port_free(port) and not ports.claimed(port) for port in block):
            bases.append(base)
            if len(bases) == count:
                return bases
    raise AssertionError("no free port blocks")


def test_free_base_port_skips_a_block_with_a_port_in_use() -> None:
    busy_block, other_block = unclaimed_free_bases(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy_block + 10 + 1))  # node 1's rpc port
        holder.listen()
        chosen = cluster.free_base_port(2, rng=ScriptedRandom([busy_block, other_block]))
    assert chosen == other_block


def test_free_base_port_skips_a_block_it_handed_out_before() -> None:
    """Nothing listens on a block handed out a moment ago, yet its nodes will: not again."""
    first, second = unclaimed_free_bases(2)
    assert cluster.free_base_port(2, rng=ScriptedRandom([first])) == first
    assert cluster.free_base_port(2, rng=ScriptedRandom([first, second])) == second


def test_clear_previous_removes_only_a_stopped_cluster_the_bench_made(tmp_path: Path) -> None:
    cluster.clear_previous(tmp_path / "absent")  # nothing there: fine
    foreign = tmp_path / "foreign"
    make_testnet(foreign, nodes=1, consensus="solo", base_port=41300)
    with pytest.raises(cluster.ClusterError, match="not made by the bench"):
        cluster.clear_previous(foreign)
    assert (foreign / "node0" / "config.toml").exists()
    ours = tmp_path / "ours"
    make_testnet(ours, nodes=1, consensus="solo", base_port=41400)
    (ours / cluster.OWNER_MARKER).write_text("seoulchain bench\n")
    cluster.clear_previous(ours)
    assert not ours.exists()
