"""The `seoulchain` CLI: init/keys/testnet write files that parse back; verify checks real
proofs offline; user errors are one line on stderr with exit code 1 or 2."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import main
from node.config import load_config
from node.genesis import load_genesis
from node.keys import load_key_file
from protocol.block import make_block
from protocol.crypto import ZERO_HASH
from protocol.proof import make_tx_proof
from protocol.proof_json import proof_to_json
from protocol.seal import SEAL_QUORUM, Seal, sign_commit_vote
from protocol.sealed import SealedBlock
from protocol.tx import sign_tx


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("seoulchain: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_init_writes_a_home_that_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    code, out, _ = run(capsys, "init", "--home", str(home), "--chain-id", "seoul-dev")
    assert code == 0
    config = load_config(home)
    genesis = load_genesis(config.genesis_path)
    assert genesis.chain_id == "seoul-dev"
    assert genesis.consensus.kind == "solo"
    node_key = load_key_file(config.key_path)
    assert genesis.validators[0].public_key == node_key.public_key
    agency_key = load_key_file(home / "agencies" / "agency0.json")
    assert genesis.agencies[0].public_key == agency_key.public_key
    assert "notary" in genesis.agencies[0].roles
    assert stat.S_IMODE(config.key_path.stat().st_mode) == 0o600
    assert genesis.genesis_hash().hex() in out


def test_init_refuses_twice_and_force_keeps_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert run(capsys, "init", "--home", str(home))[0] == 0
    key_before = load_key_file(home / "node_key.json")
    code, _, err = run(capsys, "init", "--home", str(home))
    assert code == 1
    assert_one_line_error(err, "already initialised")
    assert run(capsys, "init", "--home", str(home), "--force", "--chain-id", "other")[0] == 0
    assert load_key_file(home / "node_key.json") == key_before
    assert load_genesis(home / "genesis.json").chain_id == "other"


def test_keys_new_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.json"
    code, out, _ = run(capsys, "keys", "new", "--out", str(path))
    assert code == 0
    public = out.strip()
    assert load_key_file(path).public_key.hex() == public
    code, out, _ = run(capsys, "keys", "show", str(path))
    assert (code, out.strip()) == (0, public)
    assert load_key_file(path).seed.hex() not in out
    code, _, err = run(capsys, "keys", "new", "--out", str(path))
    assert code == 1
    assert_one_line_error(err, "refusing to overwrite")
    path.chmod(0o644)
    code, _, err = run(capsys, "keys", "show", str(path))
    assert code == 1
    assert_one_line_error(err, "chmod 600")


@pytest.mark.parametrize("consensus", ["pbft", "raft"])
def test_testnet_homes_share_genesis_and_do_not_clash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], consensus: str
) -> None:
    out_dir = tmp_path / "net"
    code, _, _ = run(
        capsys, "testnet", "--nodes", "4", "--consensus", consensus, "--out", str(out_dir),
        "--base-port", "30000", "--agencies", "3",
    )  # fmt: skip
    assert code == 0
    genesis = load_genesis(out_dir / "genesis.json")
    assert genesis.consensus.kind == consensus
    assert len(genesis.validators) == 4
    assert [a.name for a in genesis.agencies] == ["agency0", "agency1", "agency2"]
    for k, agency in enumerate(genesis.agencies):
        assert load_key_file(out_dir / "agencies" / f"agency{k}.json").public_key == (
            agency.public_key
        )
    ports: list[str] = []
    for i in range(4):
        home = out_dir / f"node{i}"
        config = load_config(home)
        assert load_genesis(config.genesis_path).genesis_hash() == genesis.genesis_hash()
        key = load_key_file(config.key_path)
        assert genesis.validators[i].public_key == key.public_key
        assert config.p2p.listen_address == f"127.0.0.1:{30000 + 10 * i}"
        assert config.rpc.listen_address == f"127.0.0.1:{30000 + 10 * i + 1}"
        assert config.metrics.listen_address == f"127.0.0.1:{30000 + 10 * i + 2}"
        ports += [config.p2p.listen_address, config.rpc.listen_address]
        ports.append(config.metrics.listen_address)
        peers = {peer.split("@")[0] for peer in config.p2p.persistent_peers}
        others = {v.public_key.hex() for j, v in enumerate(genesis.validators) if j != i}
        assert peers == others
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["testnet", "--nodes", "2", "--consensus", "solo"], 2, "solo runs exactly one node"),
        (["testnet", "--nodes", "0"], 2, "--nodes must be"),
        (["testnet", "--nodes", "2", "--base-port", "80"], 2, "--base-port must be"),
        (["testnet", "--nodes", "2", "--chain-id", "Bad!"], 2, "--chain-id 'Bad!'"),
        (["testnet", "--nodes", "x"], 2, "invalid int value"),
        (["testnet", "--nodes", "2", "--consensus", "paxos"], 2, "invalid choice"),
    ],
)
def test_testnet_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, fragment: str
) -> None:
    got, _, err = run(capsys, *argv, "--out", str(tmp_path / "net"))
    assert got == code
    assert_one_line_error(err, fragment)


def test_testnet_refuses_existing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = str(tmp_path / "net")
    assert run(capsys, "testnet", "--nodes", "1", "--consensus", "solo", "--out", out_dir)[0] == 0
    code, _, err = run(capsys, "testnet", "--nodes", "1", "--consensus", "solo", "--out", out_dir)
    assert code == 1
    assert_one_line_error(err, "already holds a testnet")


def test_missing_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "start", "--home", str(tmp_path / "nowhere"))
    assert code == 1
    assert_one_line_error(err, "cannot read config")
    code, _, err = run(capsys, "status", "--home", str(tmp_path / "nowhere"))
    assert code == 1
    assert_one_line_error(err, "cannot read config")
    code, _, err = run(
        capsys, "verify", "--genesis", str(tmp_path / "g.json"), "--proof", str(tmp_path / "p")
    )
    assert code == 1
    assert_one_line_error(err, "cannot read genesis")


def test_unreachable_node_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--rpc", "http://127.0.0.1:9")
    assert code == 1
    assert_one_line_error(err, "cannot reach http://127.0.0.1:9")


def test_bad_hash_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "notary", "show", "--hash", "abc", "--rpc", "127.0.0.1:9")
    assert code == 2
    assert_one_line_error(err, "--hash")


def _sealed_proof(net: Path, *, signers: int) -> tuple[dict[str, object], str]:
    """A real committed block of the testnet in `net`, sealed by `signers` validators,
    and the JSON proof of its second tx."""
    genesis = load_genesis(net / "genesis.json")
    keys = [load_key_file(net / f"node{i}" / "node_key.json") for i in range(4)]
    agency = load_key_file(net / "agencies" / "agency0.json")
    txs = tuple(
        sign_tx(agency, chain_id=genesis.chain_id, nonce=n, expiry_height=9, kind="notary.anchor",
                body=b"doc %d" % n)
        for n in range(3)
    )  # fmt: skip
    block = make_block(
        chain_id=genesis.chain_id, height=1, prev_hash=ZERO_HASH, time_ms=1_700_000_000_000,
        proposer=keys[0].public_key, txs=txs, validators_hash=genesis.validator_set().hash(),
        exec_height=0, exec_app_hash=ZERO_HASH, exec_results_root=ZERO_HASH,
    )  # fmt: skip
    signatures = tuple(
        (i, sign_commit_vote(keys[i], chain_id=genesis.chain_id, view=0, height=1,
                             block_hash=block.hash()))
        for i in range(signers)
    )  # fmt: skip
    seal = Seal(kind=SEAL_QUORUM, round=0, height=1, block_hash=block.hash(), signatures=signatures)
    proof = make_tx_proof(SealedBlock(block=block, seal=seal), 1)
    return proof_to_json(proof), txs[1].hash().hex()


def test_verify_accepts_a_real_proof_and_rejects_a_short_seal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net"
    assert run(capsys, "testnet", "--nodes", "4", "--out", str(net))[0] == 0
    proof, tx_hash = _sealed_proof(net, signers=3)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(proof))
    code, out, _ = run(
        capsys, "verify", "--genesis", str(net / "genesis.json"), "--proof", str(good)
    )
    assert code == 0
    assert f"OK: tx {tx_hash}" in out
    assert "3 of 4 validators signed" in out
    short, _ = _sealed_proof(net, signers=2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(short))
    code, out, err = run(
        capsys, "verify", "--genesis", str(net / "genesis.json"), "--proof", str(bad)
    )
    assert code == 1
    assert_one_line_error(err, "INVALID")
    assert "2 signatures, quorum is 3" in err
    other = tmp_path / "other"
    assert run(capsys, "testnet", "--nodes", "4", "--out", str(other), "--chain-id", "x")[0] == 0
    code, _, err = run(
        capsys, "verify", "--genesis", str(other / "genesis.json"), "--proof", str(good)
    )
    assert code == 1
    assert_one_line_error(err, "INVALID")


def test_verify_garbage_proof_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "net"
    assert run(capsys, "testnet", "--nodes", "1", "--consensus", "solo", "--out", str(net))[0] == 0
    garbage = tmp_path / "p.json"
    garbage.write_text('{"type": "tx_proof"}')
    code, _, err = run(
        capsys, "verify", "--genesis", str(net / "genesis.json"), "--proof", str(garbage)
    )
    assert code == 1
    assert_one_line_error(err, "UNREADABLE")


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    """The real entry point, in a child process: exit code and stderr as a user sees them."""
    completed = subprocess.run(
        [sys.executable, "-m", "node.cli", "keys", "show", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("seoulchain: error: ")
    assert completed.stderr.count("\n") == 1
    assert "Traceback" not in completed.stderr


def test_start_refuses_python_O(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-O", "-m", "node.cli", "start", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert "refusing to run under python -O" in completed.stderr


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--type", ""], "invalid tx body: Expected `str` of length >= 1 - at `$.doc_type`"),
        (["--type", "memo", "--meta", "novalue"], "--meta 'novalue': expected key=value"),
        (["--type", "memo", "--meta", "k=" + "v" * 300], "at `$.metadata[...]`"),
    ],
)
def test_bad_anchor_bodies_are_refused_before_any_network_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    key = tmp_path / "agency.json"
    assert run(capsys, "keys", "new", "--out", str(key))[0] == 0
    code, _, err = run(
        capsys, "notary", "anchor", "--key", str(key), "--hash", "00" * 32,
        "--rpc", "http://127.0.0.1:9", *extra,
    )  # fmt: skip
    assert code == 2
    assert_one_line_error(err, fragment)
