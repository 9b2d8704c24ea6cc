"""`seoulchain cluster` against real node processes on loopback: up, status, a notary tx
end to end (anchor, show, prove, verify offline), down. Slow: real processes and sockets."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from bench.ports import free_block
from node import cluster
from node.cli import main
from node.cluster import is_our_node, read_pid

pytestmark = pytest.mark.slow

try:
    from node.node import run_node  # noqa: F401  (only checks that the node exists)

    NODE_IMPORT_ERROR = ""
except ImportError as error:  # the lead's module may not be there yet
    NODE_IMPORT_ERROR = str(error)


def free_base_port(count: int) -> int:
    """A base port P such that P .. P+count-1 are all free on 127.0.0.1 right now, outside
    the ephemeral range (bench/ports.py says why)."""
    return free_block(count, rng=random.Random())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.skipif(
    bool(NODE_IMPORT_ERROR), reason=f"node.node not importable: {NODE_IMPORT_ERROR}"
)
@pytest.mark.timeout(120)
def test_solo_cluster_notary_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "net"
    base = str(free_base_port(3))
    try:
        code, out, err = run(
            capsys, "cluster", "up", "--dir", str(net), "--nodes", "1", "--consensus", "solo",
            "--base-port", base, "--timeout", "30",
        )  # fmt: skip
        assert code == 0, err
        assert "node0: pid" in out
        pid = read_pid(net / "node0")
        assert pid is not None
        assert is_our_node(pid, (net / "node0").resolve())

        code, out, err = run(capsys, "cluster", "status", "--dir", str(net))
        assert code == 0, err
        assert " up " in out

        home = str(net / "node0")
        document = tmp_path / "certificate.pdf"
        document.write_bytes(b"%PDF- a certificate of residence")
        code, out, err = run(
            capsys, "notary", "anchor", "--key", str(net / "agencies" / "agency0.json"),
            "--file", str(document), "--type", "residence", "--meta", "ward=jongno",
            "--home", home, "--wait",
        )  # fmt: skip
        assert code == 0, out + err
        assert "committed at height" in out
        tx_hash = next(line.split()[-1] for line in out.splitlines() if line.startswith("tx hash"))

        code, out, err = run(capsys, "notary", "show", "--file", str(document), "--home", home)
        assert code == 0, err
        assert "agency0" in out
        assert "valid" in out
        assert "ward=jongno" in out

        proof_file = tmp_path / "proof.json"
        code, out, err = run(
            capsys, "tx", "show", tx_hash, "--prove", "--out", str(proof_file), "--home", home
        )
        assert code == 0, err
        code, out, err = run(
            capsys, "verify", "--genesis", str(net / "genesis.json"), "--proof", str(proof_file)
        )
        assert code == 0, err
        assert f"OK: tx {tx_hash}" in out

        proof = json.loads(proof_file.read_text())
        proof["index"] = proof["index"] + 1
        proof_file.write_text(json.dumps(proof))
        code, _, err = run(
            capsys, "verify", "--genesis", str(net / "genesis.json"), "--proof", str(proof_file)
        )
        assert code == 1
        assert "seoulchain: error:" in err
    finally:
        lines = cluster.cluster_down(net, grace_s=10.0)
    assert any("stopped" in line or "killed" in line for line in lines), lines
    pid = read_pid(net / "node0")
    assert pid is None


@pytest.mark.skipif(
    bool(NODE_IMPORT_ERROR), reason=f"node.node not importable: {NODE_IMPORT_ERROR}"
)
@pytest.mark.timeout(180)
def test_four_node_pbft_cluster_commits_through_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tx sent to a backup commits on every node, and its proof carries a 3-of-4 seal."""
    net = tmp_path / "net"
    base = str(free_base_port(33))
    try:
        code, out, err = run(
            capsys, "cluster", "up", "--dir", str(net), "--nodes", "4", "--consensus", "pbft",
            "--base-port", base, "--timeout", "60",
        )  # fmt: skip
        assert code == 0, err
        assert out.count(" up ") == 4
        doc_hash = "ab" * 32
        code, out, err = run(
            capsys, "notary", "anchor", "--key", str(net / "agencies" / "agency1.json"),
            "--hash", doc_hash, "--type", "permit", "--home", str(net / "node2"), "--wait",
        )  # fmt: skip
        assert code == 0, out + err
        tx_hash = next(line.split()[-1] for line in out.splitlines() if line.startswith("tx hash"))
        proof_file = tmp_path / "proof.json"
        code, _, err = run(
            capsys, "tx", "show", tx_hash, "--prove", "--out", str(proof_file),
            "--home", str(net / "node3"),
        )  # fmt: skip
        assert code == 0, err
        code, out, err = run(
            capsys, "verify", "--genesis", str(net / "genesis.json"), "--proof", str(proof_file)
        )
        assert code == 0, err
        assert "of 4 validators signed" in out
        for node in range(4):
            # Other nodes commit the same block, but may execute it a moment later.
            deadline = time.monotonic() + 20
            while True:
                code, out, _ = run(
                    capsys, "notary", "show", "--hash", doc_hash, "--home", str(net / f"node{node}")
                )
                if code == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert code == 0, f"node{node} never showed the document"
            assert "agency1" in out
        code, out, _ = run(capsys, "cluster", "status", "--dir", str(net))
        assert code == 0
        assert "role=primary" in out
        assert out.count("peers=3") == 4
    finally:
        lines = cluster.cluster_down(net, grace_s=10.0)
    assert len(lines) == 4
    assert all(read_pid(net / f"node{i}") is None for i in range(4))


def test_down_with_nothing_running_touches_nothing(tmp_path: Path) -> None:
    """A pid file naming some other live process (here: this test) is never signalled."""
    net = tmp_path / "net"
    assert main(["testnet", "--nodes", "1", "--consensus", "solo", "--out", str(net)]) == 0
    (net / "node0" / "node.pid").write_text(f"{os.getpid()}\n")
    lines = cluster.cluster_down(net, grace_s=0.1)
    assert lines == [f"node0: pid {os.getpid()} not running"]
