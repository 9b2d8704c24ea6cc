"""CLI commands of the asset, fund and reward services (node/cli_asset.py, cli_fund.py,
cli_reward.py): bodies built from arguments decode as the chain decodes them; bad
arguments are one-line usage errors before any network call; and, against a real in-process
solo node over RPC, a short day of txs and queries end to end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
from pathlib import Path

import msgspec
import pytest

from node import cli_asset, cli_fund, cli_reward
from node.cli_common import CliError
from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.keys import write_key_file
from node.node import Node
from protocol.crypto import SigningKey
from services import asset, fund, reward
from services.asset import RegisterBody
from services.fund_bodies import ContractBody, DonateBody
from services.reward import RedeemBody
from storage.leveldb import LevelDbChainStore

KIM = SigningKey.from_secret(b"cli kim")
LEE = SigningKey.from_secret(b"cli lee")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="seoulchain")
    commands = root.add_subparsers(dest="command")
    for module in (cli_asset, cli_fund, cli_reward):
        module.add_commands(commands)
    return root


def run(argv: list[str]) -> tuple[int, str]:
    """Run one command the way node/cli.py's main does: handler, CliError -> exit code."""
    args = parser().parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = int(args.handler(args))
        except CliError as error:
            return error.exit_code, str(error)
    return code, out.getvalue()


def test_register_arguments_build_the_chains_body() -> None:
    args = parser().parse_args(
        [
            "asset",
            "register",
            "--key",
            "k.json",
            "--id",
            "VIN-1",
            "--owner",
            KIM.public_key.hex(),
            "--odometer",
            "42",
            "--description",
            "Sonata 2019",
        ]
    )
    kind, body = cli_asset.build_register(args)
    assert kind == "asset.register"
    decoded = msgspec.msgpack.decode(body, type=RegisterBody)
    assert (decoded.asset_id, decoded.owner, decoded.odometer_km) == ("VIN-1", KIM.public_key, 42)


def test_contract_milestones_parse(tmp_path: Path) -> None:
    key_file = tmp_path / "inspector.json"
    write_key_file(key_file, LEE)
    args = parser().parse_args(
        [
            "fund",
            "contract",
            "--key",
            "k.json",
            "--campaign",
            "c",
            "--id",
            "k-1",
            "--title",
            "t",
            "--milestone",
            f"300:{KIM.public_key.hex()}:{key_file}:roof: phase 1",
        ]
    )
    kind, body = cli_fund.build_contract(args)
    assert kind == "fund.contract"
    (milestone,) = msgspec.msgpack.decode(body, type=ContractBody).milestones
    assert (milestone.amount, milestone.subcontractor) == (300, KIM.public_key)
    assert milestone.inspector == LEE.public_key, "a key file names its public key"
    assert milestone.description == "roof: phase 1"


def test_donate_and_redeem_bodies() -> None:
    args = parser().parse_args(
        ["fund", "donate", "--key", "k", "--campaign", "c", "--amount", "5", "--reference", "r"]
    )
    body = msgspec.msgpack.decode(cli_fund.build_donate(args)[1], type=DonateBody)
    assert (body.amount, body.reference) == (5, "r")
    args = parser().parse_args(
        ["reward", "redeem", "--key", "k", "--merchant", LEE.public_key.hex(), "--points", "9"]
    )
    redeem = msgspec.msgpack.decode(cli_reward.build_redeem(args)[1], type=RedeemBody)
    assert (redeem.merchant, redeem.points) == (LEE.public_key, 9)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["asset", "register", "--id", "bad id", "--owner", "00" * 32], "asset_id"),
        (["asset", "register", "--id", "v", "--owner", "nope"], "neither 64 hex"),
        (["asset", "record", "--id", "v", "--event", "repair", "--odometer", "-1"], "odometer"),
        (["fund", "donate", "--campaign", "c", "--amount", "0"], "amount"),
        (["fund", "donate", "--campaign", "c", "--amount", str(2**64)], "invalid tx body"),
        (["fund", "contract", "--campaign", "c", "--id", "k", "--title", "t"], "1..16"),
        (
            [
                "fund",
                "contract",
                "--campaign",
                "c",
                "--id",
                "k",
                "--title",
                "t",
                "--milestone",
                "x",
            ],
            "AMOUNT:SUBCONTRACTOR",
        ),
        (["reward", "transfer", "--to", "00" * 32, "--points", "0"], "points"),
    ],
)
def test_bad_arguments_fail_before_any_network_call(argv: list[str], fragment: str) -> None:
    # Port 1 on loopback refuses connections: reaching the network would be exit 1, not 2.
    code, message = run([*argv, "--key", "/nonexistent", "--rpc", "http://127.0.0.1:1"])
    assert code == 2
    assert fragment in message


# --- end to end, against a real solo node ------------------------------------------------


def _genesis(registry: SigningKey, manager: SigningKey, shop: SigningKey) -> Genesis:
    return Genesis(
        chain_id="seoul-cli",
        genesis_time_ms=1_700_000_000_000,
        consensus=ConsensusParams(kind="solo"),
        validators=(
            GenesisValidator(
                name="node0",
                public_key=SigningKey.from_secret(b"cli validator").public_key,
                p2p_address="127.0.0.1:1",
                rpc_address="127.0.0.1:2",
            ),
        ),
        agencies=(
            GenesisAgency(
                name="registry",
                public_key=registry.public_key,
                roles=(asset.ROLE, reward.ISSUER_ROLE),
            ),
            GenesisAgency(name="welfare", public_key=manager.public_key, roles=(fund.ROLE,)),
            GenesisAgency(name="shop", public_key=shop.public_key, roles=(reward.MERCHANT_ROLE,)),
        ),
    )


@pytest.mark.slow
async def test_a_short_day_through_the_cli(tmp_path: Path) -> None:
    registry, manager, shop = (SigningKey.from_secret(s) for s in (b"reg", b"mgr", b"shop"))
    files = {}
    for name, key in {"registry": registry, "manager": manager, "kim": KIM, "lee": LEE}.items():
        files[name] = str(tmp_path / f"{name}.json")
        write_key_file(Path(files[name]), key)
    config = Config(home=tmp_path)
    config.rpc.listen_address = "127.0.0.1:0"
    config.metrics.listen_address = "127.0.0.1:0"
    config.consensus.tick_ms = 5
    config.consensus.block_interval_ms = 5
    genesis = _genesis(registry, manager, shop)
    node = Node(
        config=config,
        genesis=genesis,
        key=SigningKey.from_secret(b"cli validator"),
        store=LevelDbChainStore(tmp_path / "chain.db"),
    )
    await node.start()
    try:
        assert node.rpc is not None
        rpc = ["--rpc", f"http://127.0.0.1:{node.rpc.port}"]
        await _day(rpc, files, shop)
    finally:
        await node.stop()


async def _cli(argv: list[str]) -> tuple[int, str]:
    return await asyncio.wait_for(asyncio.to_thread(run, argv), timeout=30)


async def _day(rpc: list[str], files: dict[str, str], shop: SigningKey) -> None:
    kim, lee = KIM.public_key.hex(), LEE.public_key.hex()
    steps = [
        ["asset", "register", "--key", files["registry"], "--id", "VIN-9", "--owner", kim],
        [
            "asset",
            "record",
            "--key",
            files["registry"],
            "--id",
            "VIN-9",
            "--event",
            "inspection",
            "--odometer",
            "1200",
        ],
        ["asset", "transfer", "--key", files["kim"], "--id", "VIN-9", "--to", files["lee"]],
        ["fund", "create", "--key", files["manager"], "--id", "relief", "--title", "Relief"],
        ["fund", "donate", "--key", files["kim"], "--campaign", "relief", "--amount", "900"],
        [
            "fund",
            "contract",
            "--key",
            files["manager"],
            "--campaign",
            "relief",
            "--id",
            "k-1",
            "--title",
            "Roof",
            "--milestone",
            f"400:{kim}:{files['lee']}:roof",
        ],
        ["fund", "approve", "--key", files["lee"], "--contract", "k-1", "--milestone", "0"],
        [
            "reward",
            "award",
            "--key",
            files["registry"],
            "--record",
            "m-1",
            "--holder",
            kim,
            "--points",
            "50",
            "--activity",
            "walking",
        ],
        [
            "reward",
            "redeem",
            "--key",
            files["kim"],
            "--merchant",
            shop.public_key.hex(),
            "--points",
            "20",
        ],
    ]
    for argv in steps:
        code, out = await _cli([*argv, "--wait", *rpc])
        assert code == 0, (argv, out)
        assert "committed at height" in out
    refused = ["asset", "transfer", "--key", files["kim"], "--id", "VIN-9", "--to", kim, "--wait"]
    code, out = await _cli([*refused, *rpc])
    assert code == 1, "kim no longer owns the car"
    assert "code 205" in out
    code, out = await _cli(["asset", "history", "--id", "VIN-9", *rpc])
    assert code == 0
    events = json.loads(out)["events"]
    assert [e["event"] for e in events] == ["registration", "inspection", "transfer"]
    assert events[2]["owner"] == lee
    code, out = await _cli(["fund", "show", "--campaign", "relief", *rpc])
    assert json.loads(out)["paid"] == 400
    assert json.loads(out)["balance"] == 500
    code, out = await _cli(["reward", "supply", *rpc])
    assert json.loads(out)["supply"] == 30
    code, out = await _cli(["reward", "balance", "--holder", files["kim"], *rpc])
    assert json.loads(out)["points"] == 30
    code, _ = await _cli(["fund", "show", "--campaign", "nope", *rpc])
    assert code == 1
