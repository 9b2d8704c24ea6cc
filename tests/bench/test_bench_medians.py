"""scripts/bench_medians.py: the bench command of a run, its A/B mode (`--base`), and the
chain stores it deletes after a run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tests.scripts_loader import load_script

bench_medians = load_script("bench_medians.py")


def _args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(duration=60.0, no_plots=True, out=str(tmp_path / "out"))


def test_a_run_loads_the_whole_duration_into_an_absolute_out_directory(tmp_path: Path) -> None:
    (side,) = bench_medians.variants(None)
    out = Path("relative/run")
    command, cwd, env = bench_medians.bench_invocation("pbft:4:1600", out, _args(tmp_path), side)
    assert cwd is None
    assert env is None
    assert command[command.index("--txs-max") + 1] == "96000"  # 1,600 tx/s x 60 s
    assert command[command.index("--out") + 1] == str(out.resolve())
    assert command[command.index("--consensus") + 1 :][:5] == [
        "pbft",
        "--nodes",
        "4",
        "--rate",
        "1600",
    ]
    assert "--no-plots" in command


def test_ab_pairs_alternate_which_side_runs_first(tmp_path: Path) -> None:
    sides = bench_medians.variants(tmp_path)
    assert [side.label for side in sides] == ["@base", "@this"]
    assert sides[0].tree == tmp_path.resolve()
    orders = [[side.label for side in bench_medians.pair_order(i, sides)] for i in range(3)]
    assert orders == [["@base", "@this"], ["@this", "@base"], ["@base", "@this"]]


def test_a_base_run_imports_the_base_checkout_ahead_of_the_installed_one(tmp_path: Path) -> None:
    """The A/B rests on this: with the base tree first on PYTHONPATH, `python -m node.cli`
    and the node processes it starts import the base tree's packages, not this checkout's
    (installed in the venv in editable mode)."""
    base = tmp_path / "base"
    (base / "node").mkdir(parents=True)
    (base / "node" / "__init__.py").write_text("")
    side = bench_medians.variants(base)[0]
    _, cwd, env = bench_medians.bench_invocation(
        "raft:3:100", tmp_path / "o", _args(tmp_path), side
    )
    assert cwd == base.resolve()
    assert env is not None
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(base.resolve())
    elsewhere = tmp_path / "node-home"  # node processes run in their homes, not in `cwd`
    elsewhere.mkdir()
    found = subprocess.run(
        [sys.executable, "-c", "import node; print(node.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found) == base.resolve() / "node" / "__init__.py"


def test_after_a_run_only_the_chain_stores_go(tmp_path: Path) -> None:
    out = tmp_path / "pbft4-1600-0"
    for node in ("node0", "node1"):
        (out / "cluster" / node / "data" / "chain.db").mkdir(parents=True)
        (out / "cluster" / node / "data" / "chain.db" / "000005.ldb").write_bytes(b"x" * 1000)
        (out / "cluster" / node / "node.log").write_text("log")
        (out / "cluster" / node / "config.toml").write_text("[p2p]")
    (out / "results.json").write_text("{}")
    (out / "report.md").write_text("# report")
    assert bench_medians.drop_chain_stores(out) == 2000
    assert not list(out.glob("cluster/node*/data"))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "cluster/node0/config.toml",
        "cluster/node0/node.log",
        "cluster/node1/config.toml",
        "cluster/node1/node.log",
        "report.md",
        "results.json",
    ]
    assert bench_medians.drop_chain_stores(out) == 0, "nothing left to drop"
