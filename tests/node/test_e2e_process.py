"""Issue 2's end-to-end check on a real node process: `seoulchain init` then `start`, the
CLI anchors a document, WebSocket subscribers see the block, and after kill -9 and a
restart the chain, app hash and document are all still there and the same signed tx is
refused as a replay."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.client import RpcClient
from node.config import load_config, write_config
from node.keys import load_key_file
from protocol.crypto import sha256
from protocol.tx import sign_tx
from services.notary import encode_anchor
from tests.node.cluster_helpers import free_port

pytestmark = pytest.mark.slow

SEOULCHAIN = [sys.executable, "-m", "node.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SEOULCHAIN, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def _start(home: Path) -> subprocess.Popen[bytes]:
    with (home / "node.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*SEOULCHAIN, "start", "--home", str(home)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _wait_healthy(client: RpcClient, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await client.health()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def _init_home(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    result = _cli("init", "--home", str(home), "--chain-id", "seoul-e2e")
    assert result.returncode == 0, result.stderr
    config = load_config(home)
    config.p2p.listen_address = f"127.0.0.1:{free_port()}"
    config.rpc.listen_address = f"127.0.0.1:{free_port()}"
    config.metrics.listen_address = f"127.0.0.1:{free_port()}"
    write_config(home, config, overwrite=True)
    return home, f"http://{config.rpc.listen_address}"


async def test_init_start_anchor_kill9_restart(tmp_path: Path) -> None:
    home, url = _init_home(tmp_path)
    document = tmp_path / "contract.txt"
    document.write_bytes(b"lease contract, Jongno-gu, 2026")
    agency_key_file = next((home / "agencies").glob("*.json"))
    process = _start(home)
    try:
        async with RpcClient(url) as client:
            await _wait_healthy(client)
            async with client.subscribe("tm.event='NewBlock'") as blocks:
                anchor = await asyncio.to_thread(
                    _cli,
                    "notary",
                    "anchor",
                    "--key",
                    str(agency_key_file),
                    "--file",
                    str(document),
                    "--type",
                    "contract",
                    "--rpc",
                    url,
                    "--wait",
                )
                assert anchor.returncode == 0, anchor.stderr
                event = await asyncio.wait_for(blocks.__anext__(), 10)
                assert event["data"]["type"] == "NewBlock"
                assert event["data"]["value"]["num_txs"] >= 1
            shown = await asyncio.to_thread(
                _cli, "notary", "show", "--file", str(document), "--rpc", url
            )
            assert shown.returncode == 0, shown.stderr
            assert "valid" in shown.stdout
            # A tx we sign ourselves, committed, to replay after the crash.
            key = load_key_file(agency_key_file)
            status = await client.status()
            tx = sign_tx(
                key,
                chain_id="seoul-e2e",
                nonce=424242,
                expiry_height=status["sync_info"]["latest_block_height"] + 1000,
                kind="notary.anchor",
                body=encode_anchor(sha256(b"second document"), "certificate"),
            )
            committed = await client.broadcast_tx_commit(tx)
            assert committed["tx_result"]["code"] == 0, committed
            await asyncio.sleep(0.5)  # proof blocks
            before = (await client.status())["sync_info"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        process = _start(home)
        async with RpcClient(url) as client:
            await _wait_healthy(client)
            after = (await client.status())["sync_info"]
            assert after["latest_block_height"] == before["latest_block_height"]
            assert after["latest_app_hash"] == before["latest_app_hash"]
            shown = await asyncio.to_thread(
                _cli, "notary", "show", "--file", str(document), "--rpc", url
            )
            assert shown.returncode == 0, shown.stderr
            replay = await client.call(
                "broadcast_tx_sync", {"tx": base64.b64encode(tx.encode()).decode()}
            )
            assert replay["code"] != 0, replay
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
