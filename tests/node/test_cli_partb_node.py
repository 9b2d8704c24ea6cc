"""Issue 7 part B CLI commands against a real single-validator node in-process (real store,
services and RPC on a loopback port 0): issue and show a credential, a governance change
applied by a one-member council, and a whole election through `vote` commands."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from pathlib import Path

import pytest

from node import cli_credential, cli_gov, cli_vote
from node.config import Config
from node.genesis import (
    ConsensusParams,
    Council,
    Genesis,
    GenesisAgency,
    GenesisValidator,
)
from node.keys import write_key_file
from node.node import Node
from protocol.crypto import SigningKey
from protocol.tx import sign_tx
from services.vote import encode_close
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-test"
VALIDATOR = SigningKey.from_secret(b"validator-0")
CITY = SigningKey.from_secret(b"city")
COUNCIL = SigningKey.from_secret(b"council")
VOTER = SigningKey.from_secret(b"voter")
NEWCOMER = SigningKey.from_secret(b"newcomer")
FILLER = SigningKey.from_secret(b"filler")
_filler_nonces = itertools.count(1)


def _genesis() -> Genesis:
    return Genesis(
        chain_id=CHAIN,
        genesis_time_ms=1_700_000_000_000,
        consensus=ConsensusParams(kind="solo"),
        validators=(
            GenesisValidator(
                name="node0",
                public_key=VALIDATOR.public_key,
                p2p_address="127.0.0.1:1",
                rpc_address="127.0.0.1:2",
            ),
        ),
        agencies=(
            GenesisAgency(
                name="city", public_key=CITY.public_key, roles=("credential_issuer", "vote_admin")
            ),
        ),
        council=Council(public_keys=(COUNCIL.public_key,), threshold=1),
    )


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="seoulchain")
    commands = root.add_subparsers(dest="command")
    for module in (cli_credential, cli_vote, cli_gov):
        module.add_commands(commands)
    return root


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    args = _parser().parse_args(list(argv))
    code = await asyncio.to_thread(args.handler, args)
    return code, capsys.readouterr().out


async def _advance_to(node: Node, height: int) -> None:
    """Commit filler txs (a refused close of no election) until `height` is committed."""
    for _ in range(100):  # bounded: each commit moves the height by at least 1
        if node.latest_height() >= height:
            return
        filler = sign_tx(
            FILLER,
            chain_id=CHAIN,
            nonce=next(_filler_nonces),
            expiry_height=10_000,
            kind="vote.close",
            body=encode_close("no-such-election"),
        )
        assert (await node.submit_tx(filler.encode())).code == 0
        assert await node.wait_for_commit(filler.hash(), timeout_s=10) is not None
    raise AssertionError(f"height {height} not reached")


async def _quiesce(node: Node) -> None:
    """Let in-flight blocks finish before stop: Node.stop closes the store while a block
    may still be committing in a worker thread (a node bug, reported), which can crash."""
    last, steady = -1, 0
    for _ in range(100):  # bounded: 5 s
        await asyncio.sleep(0.05)
        height = node.latest_height()
        steady = steady + 1 if height == last else 0
        last = height
        if steady >= 3:
            return


@pytest.mark.slow
async def test_credential_gov_and_vote_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = {}
    for name, key in (("city", CITY), ("council", COUNCIL), ("voter", VOTER)):
        keys[name] = tmp_path / f"{name}.json"
        write_key_file(keys[name], key)
    config = Config(home=tmp_path)
    config.rpc.listen_address = "127.0.0.1:0"
    config.metrics.listen_address = "127.0.0.1:0"
    config.consensus.tick_ms = 5
    config.consensus.block_interval_ms = 5
    node = Node(
        config=config, genesis=_genesis(), key=VALIDATOR, store=LevelDbChainStore(tmp_path / "db")
    )
    await node.start()
    try:
        assert node.rpc is not None
        rpc = ["--rpc", f"http://127.0.0.1:{node.rpc.port}"]
        city = ["--key", str(keys["city"]), *rpc, "--wait"]

        code, out = await _run(
            capsys, "credential", "issue", *city, "--holder", VOTER.public_key.hex(),
            "--type", "resident", "--serial", "R-1", "--until-ms", str(2**62),
            "--claim", "district=Mapo",
        )  # fmt: skip
        assert code == 0, out
        ident = out.splitlines()[0].removeprefix("credential id: ")
        code, out = await _run(capsys, "credential", "show", "--id", ident, *rpc)
        assert code == 0
        assert json.loads(out)["claims"] == {"district": "Mapo"}

        council = ["--key", str(keys["council"]), *rpc, "--wait"]
        code, out = await _run(
            capsys, "gov", "propose", *council, "--id", "add-mapo", "add-agency",
            "--name", "mapo", "--public-key", NEWCOMER.public_key.hex(), "--role", "notary",
        )  # fmt: skip
        assert code == 0, out
        code, out = await _run(capsys, "gov", "show", "--id", "add-mapo", *rpc)
        assert json.loads(out)["status"] == "applied"

        start = node.latest_height() + 5
        end = start + 10
        code, out = await _run(
            capsys, "vote", "create", *city, "--id", "budget", "--title", "Budget",
            "--option", "park", "--option", "pool", "--voter", VOTER.public_key.hex(),
            "--start", str(start), "--end", str(end),
        )  # fmt: skip
        assert code == 0, out
        voter = ["--key", str(keys["voter"]), *rpc, "--wait"]
        code, out = await _run(capsys, "vote", "results", "--id", "budget", *rpc)
        assert code == 1
        assert "not closed" in out
        await _advance_to(node, start)
        code, out = await _run(capsys, "vote", "cast", *voter, "--id", "budget", "--option", "1")
        assert code == 0, out
        await _advance_to(node, end + 1)
        code, out = await _run(capsys, "vote", "close", *voter, "--id", "budget")
        assert code == 0, out
        code, out = await _run(capsys, "vote", "results", "--id", "budget", *rpc)
        assert code == 0
        assert [row["votes"] for row in json.loads(out)["results"]] == [0, 1]
    finally:
        await _quiesce(node)
        await node.stop()
