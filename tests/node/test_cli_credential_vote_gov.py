"""CLI modules of issue 7 part B: offline credential presentation (holder signs, verifier
checks against a genesis file, no node), and bodies checked against the chain's own bounds
before any network call."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from node import cli_credential, cli_gov, cli_vote
from node.cli_common import CliError
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator, write_genesis
from node.keys import write_key_file
from protocol.proof_json import proof_to_json
from tests.services.test_credential_offline import (
    CHALLENGE,
    HOLDER,
    KEYS,
    LICENSING,
    T0,
    committed,
    issue_tx,
)

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing may be sent there


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="seoulchain")
    commands = root.add_subparsers(dest="command")
    for module in (cli_credential, cli_vote, cli_gov):
        module.add_commands(commands)
    return root


def run(*argv: str) -> int:
    args = parser().parse_args(list(argv))
    code: int = args.handler(args)
    return code


def genesis_file(path: Path) -> Path:
    genesis = Genesis(
        chain_id="seoul-test",
        genesis_time_ms=T0,
        consensus=ConsensusParams(kind="pbft"),
        validators=tuple(
            GenesisValidator(
                name=f"node{i}",
                public_key=key.public_key,
                p2p_address=f"127.0.0.1:{20000 + i}",
                rpc_address=f"127.0.0.1:{21000 + i}",
            )
            for i, key in enumerate(KEYS)
        ),
        agencies=(
            GenesisAgency(
                name="Licensing", public_key=LICENSING.public_key, roles=("credential_issuer",)
            ),
        ),
    )
    write_genesis(path, genesis)
    return path


def test_present_then_check_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, proof = committed(issue_tx())
    proof_path = tmp_path / "proof.json"
    proof_path.write_text(json.dumps(proof_to_json(proof)), encoding="utf-8")
    holder_key = tmp_path / "holder.json"
    write_key_file(holder_key, HOLDER)
    presentation = tmp_path / "presentation.json"
    genesis = genesis_file(tmp_path / "genesis.json")
    challenge = CHALLENGE.hex()
    assert (
        run(
            "credential", "present", "--holder-key", str(holder_key), "--proof", str(proof_path),
            "--challenge", challenge, "--out", str(presentation),
        )
        == 0
    )  # fmt: skip
    check = ["credential", "check", "--genesis", str(genesis), "--presentation", str(presentation)]
    assert run(*check, "--challenge", challenge, "--at-ms", str(T0)) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID: nurse-licence N-7 issued by Licensing")
    assert "result proven" in out
    with pytest.raises(CliError, match="INVALID: holder signature"):
        run(*check, "--challenge", "ab" * 20, "--at-ms", str(T0))
    with pytest.raises(CliError, match="INVALID: credential is expired"):
        run(*check, "--challenge", challenge, "--at-ms", str(T0 + 10**9))
    with pytest.raises(CliError, match="INVALID: credential is of type"):
        run(*check, "--challenge", challenge, "--at-ms", str(T0), "--type", "doctor")


def test_bad_bodies_are_refused_before_any_network_call(tmp_path: Path) -> None:
    key = tmp_path / "k.json"
    write_key_file(key, LICENSING)
    tx = ["--key", str(key), "--rpc", UNREACHABLE]
    cases = [
        ["gov", "propose", *tx, "--id", "p1", "set-roles", "--name", "x", "--role", "Bad"],
        ["gov", "propose", *tx, "--id", "bad id", "remove-agency", "--name", "x"],
        ["vote", "create", *tx, "--id", "e", "--title", "t", "--option", "only", "--voter",
         "00" * 32, "--start", "2", "--end", "3"],
        ["vote", "cast", *tx, "--id", "e", "--option", "99"],
        ["credential", "issue", *tx, "--holder", "00" * 32, "--type", "", "--serial", "s",
         "--until-ms", "5"],
    ]  # fmt: skip
    for argv in cases:
        with pytest.raises(CliError, match="invalid tx body") as caught:
            run(*argv)
        assert caught.value.exit_code == 2
    with pytest.raises(CliError, match=r"give 1\.\.1000 voters"):
        run("vote", "create", *tx, "--id", "e", "--title", "t", "--option", "a", "--option", "b",
            "--start", "2", "--end", "3")  # fmt: skip
    with pytest.raises(CliError, match="--public-key"):
        run("gov", "propose", *tx, "--id", "p", "add-agency", "--name", "n", "--public-key", "zz")
