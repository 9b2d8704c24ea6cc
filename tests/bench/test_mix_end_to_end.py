"""`seoulchain bench --mix` against a real solo node (slow tier): every kind of the mix
commits, none is refused at execution, and results.json / report.md carry the per-kind
figures. A second test proves the refusal check is real: the setup helper, fed txs the
services must refuse, stops with the kind and code."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import cluster, mix, mixload, results, setup, txgen
from bench.mixload import MixLoad
from node.client import RpcClient, RpcError, RpcTransportError

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240
SEOULCHAIN_BENCH = [str(Path(sys.executable).parent / "seoulchain"), "bench"]
MIX = "notary=50,asset=20,fund=10,reward=10,credential=5,vote=5"


def run_bench(out: Path, *arguments: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    done = subprocess.run(
        [*SEOULCHAIN_BENCH, "--out", str(out), "--no-progress", "--no-plots", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    path = out / "results.json"
    assert path.exists(), f"no results.json; stderr:\n{done.stderr[-3000:]}"
    return done, json.loads(path.read_text())


@pytest.mark.slow
def test_solo_mixed_run_commits_every_kind_without_execution_refusals(tmp_path: Path) -> None:
    out = tmp_path / "mix"
    done, document = run_bench(
        out,
        *("--nodes", "1", "--consensus", "solo", "--duration", "5", "--rate", "200"),
        *("--mix", MIX),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert results.validate(document) == []
    assert document["minor_version"] == results.SCHEMA_MINOR_VERSION
    assert document["setup"]["txs"] > 0
    assert document["setup"]["elections"] == 1
    (run,) = document["runs"]
    committed_by_family: dict[str, int] = {}
    for kind, entry in run["kinds"].items():
        family = mix.family_of(kind)
        committed_by_family[family] = committed_by_family.get(family, 0) + entry["committed"]
        assert entry["refused_at_execution"] == 0, (kind, run["execution"])
    for family in mix.parse_mix(MIX):
        assert committed_by_family.get(family, 0) > 0, family
    execution = run["execution"]
    assert execution["refused_total"] == 0, execution["samples"]
    assert execution["checked_txs"] == run["committed"] > 0
    assert execution["unchecked_blocks"] == 0
    assert run["consistency"]["same_app_hash"] is True
    assert "| vote.cast |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_setup_stops_with_kind_and_code_when_the_services_refuse(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    launched = cluster.launch(
        directory, nodes=1, consensus="solo", agencies=2, rng=random.Random(5)
    )
    try:
        asyncio.run(_setup_twice(launched, directory))
    finally:
        cluster.teardown(launched)


async def _setup_twice(launched: cluster.Cluster, directory: Path) -> None:
    keys = txgen.load_agency_keys(directory)
    spec = txgen.LoadSpec(
        chain_id=await _chain_id(launched), expiry_height=10**7, tx_bytes=250, run_tag="twice"
    )
    first = mixload.prepare(spec, keys, {"asset": 1}, [10], workers=0)
    done = await setup.run_setup(launched, first)
    assert done["txs"] == 5
    # The same plan again (same ids, fresh nonces): every registration is a duplicate.
    again: MixLoad = mixload.prepare(spec, keys, {"asset": 1}, [10], workers=0)
    with pytest.raises(setup.SetupError, match=r"asset\.register:201"):
        await setup.run_setup(launched, again)


async def _chain_id(launched: cluster.Cluster) -> str:
    async with RpcClient(launched.nodes[0].rpc_url) as client:
        for _ in range(100):
            try:
                answer = await client.call("genesis")
                return str(answer["genesis"]["chain_id"])
            except (RpcError, RpcTransportError):  # the node may still be starting
                await asyncio.sleep(0.2)
    raise AssertionError("node never answered genesis")
