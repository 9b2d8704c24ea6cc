"""`seoulchain notary verify FILE` against a real single-validator node in-process (real
store, real services, real RPC server on a loopback port 0): valid, revoked, expired and
unknown documents, exit codes, and one-line errors."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from pathlib import Path

import pytest

from node import cli_notary_verify
from node.cli_common import CliError
from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.node import Node
from protocol.crypto import SigningKey
from protocol.tx import Tx, sign_tx
from services.notary import encode_anchor, encode_revoke
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-test"
VALIDATOR = SigningKey.from_secret(b"validator-0")
AGENCY = SigningKey.from_secret(b"agency-0")


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
            GenesisAgency(name="seoul-city", public_key=AGENCY.public_key, roles=("notary",)),
        ),
    )


def _tx(nonce: int, kind: str, body: bytes) -> Tx:
    return sign_tx(AGENCY, chain_id=CHAIN, nonce=nonce, expiry_height=1000, kind=kind, body=body)


async def _commit(node: Node, tx: Tx) -> None:
    submitted = await node.submit_tx(tx.encode())
    assert submitted.code == 0, submitted
    committed = await node.wait_for_commit(tx.hash(), timeout_s=10)
    assert committed is not None
    assert committed.result.code == 0, committed.result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seoulchain notary")
    cli_notary_verify.add_commands(parser.add_subparsers(dest="notary_command"))
    return parser


async def _verify(
    capsys: pytest.CaptureFixture[str], url: str, path: Path, *extra: str
) -> tuple[int, str]:
    args = _parser().parse_args(["verify", str(path), "--rpc", url, *extra])
    code = await asyncio.to_thread(args.handler, args)
    return code, capsys.readouterr().out.strip()


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
async def test_verify_reports_each_status_with_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {name: tmp_path / f"{name}.pdf" for name in ("valid", "revoked", "expiring", "none")}
    for name, path in files.items():
        path.write_bytes(f"document {name}".encode() * 1000)
    digest = {name: hashlib.sha256(path.read_bytes()).digest() for name, path in files.items()}
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
        expires = int(time.time() * 1000) + 3_600_000
        await _commit(node, _tx(1, "notary.anchor", encode_anchor(digest["valid"], "permit")))
        await _commit(node, _tx(2, "notary.anchor", encode_anchor(digest["revoked"], "permit")))
        await _commit(node, _tx(3, "notary.revoke", encode_revoke(digest["revoked"], "fraud")))
        body = encode_anchor(digest["expiring"], "permit", expires_at_ms=expires)
        await _commit(node, _tx(4, "notary.anchor", body))
        assert node.rpc is not None
        url = f"http://127.0.0.1:{node.rpc.port}"

        code, out = await _verify(capsys, url, files["valid"])
        assert code == 0
        assert out.startswith(f"valid: {digest['valid'].hex()} anchored by seoul-city")
        code, out = await _verify(capsys, url, files["revoked"])
        assert code == 1
        assert out.startswith("revoked: ")
        assert out.endswith("fraud")
        code, out = await _verify(capsys, url, files["expiring"])
        assert (code, out.split(":")[0]) == (0, "valid"), "latest block time is before expiry"
        code, out = await _verify(capsys, url, files["expiring"], "--at-ms", str(expires))
        assert (code, out.split(":")[0]) == (1, "expired")
        code, out = await _verify(capsys, url, files["none"])
        assert (code, out) == (1, f"unknown: {digest['none'].hex()} was never anchored")
        with pytest.raises(CliError, match="cannot read"):
            await _verify(capsys, url, tmp_path / "missing.pdf")
    finally:
        await _quiesce(node)
        await node.stop()


def test_verdict_of_refuses_malformed_answers() -> None:
    digest = bytes(32)
    assert cli_notary_verify.verdict_of({"found": False}, digest)[0] == "unknown"
    bad_answers: list[object] = [
        None,
        [],
        {"found": True},
        {"found": True, "value": {"status": "x"}},
    ]
    for bad in bad_answers:
        with pytest.raises(CliError):
            cli_notary_verify.verdict_of(bad, digest)
