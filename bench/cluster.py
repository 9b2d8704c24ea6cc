"""The cluster under test: launch a fresh one through the `seoulchain` CLI, or attach to a
running one, and tear down only what this bench started.

A fresh cluster is `seoulchain testnet` (N homes and agency keys in the run directory,
on a free block of loopback ports) followed by `seoulchain cluster up`, which starts each
node as its own `seoulchain start` process and records its PID in nodeK/node.pid. The bench
reaches the node only through its CLI and RPC (tests/test_architecture.py), so it runs the
CLI as a subprocess and reads the files the CLI documents (config.toml, node.pid).
Teardown is `seoulchain cluster down`, which signals only PIDs recorded in that directory,
and only if they still run that home's start command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench import ports

log = logging.getLogger(__name__)

CLI_TIMEOUT_S = 120.0
UP_TIMEOUT_S = 60.0
PORTS_PER_NODE = 10  # node/cli_init.py: node i uses P+10i (p2p), +1 (rpc), +2 (metrics)
PORT_ATTEMPTS_MAX = 64
# Written into a cluster directory the bench launched: only such a directory, with no node
# still running, is ever deleted (so `--out runs/demo` can be run again).
OWNER_MARKER = ".launched-by-seoulchain-bench"


class ClusterError(Exception):
    """The cluster could not be created, reached or stopped; the message says which step."""


@dataclass(slots=True)
class NodeHandle:
    name: str
    rpc_url: str
    metrics_url: str | None  # None when attached by URL only (no config to read)
    home: Path | None = None
    killed: bool = False  # by a --fault; the load and the checks skip it from then on

    def pid(self) -> int | None:
        """The node's PID from its home's node.pid, if that PID still runs this home."""
        if self.home is None:
            return None
        try:
            text = (self.home / "node.pid").read_text(encoding="ascii").strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if _runs_home(pid, self.home) else None


@dataclass(slots=True)
class Cluster:
    nodes: list[NodeHandle]
    directory: Path | None  # the testnet directory, when known
    owned: bool  # started by this bench: stop it at teardown

    def alive(self) -> list[NodeHandle]:
        return [node for node in self.nodes if not node.killed]


def seoulchain_command() -> list[str]:
    """The console script next to this interpreter, else `python -m node.cli`."""
    script = Path(sys.executable).parent / "seoulchain"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "node.cli"]


def run_cli(arguments: list[str], *, timeout_s: float = CLI_TIMEOUT_S) -> str:
    command = seoulchain_command() + arguments
    log.info("running %s", " ".join(command))
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{' '.join(arguments[:2])}: no answer in {timeout_s:g} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        raise ClusterError(f"seoulchain {' '.join(arguments[:2])} failed: {detail}")
    return done.stdout


def free_base_port(nodes: int, *, rng: random.Random) -> int:
    """A base port P such that P + 10i + {0, 1, 2} are all free on 127.0.0.1 right now,
    outside the kernel's ephemeral range and not handed out before (bench/ports.py says why)."""
    offsets = [PORTS_PER_NODE * i + k for i in range(nodes) for k in range(3)]
    try:
        return ports.free_pattern(offsets, rng=rng, step=PORTS_PER_NODE, attempts=PORT_ATTEMPTS_MAX)
    except OSError as exc:
        raise ClusterError(f"no free block of {nodes * PORTS_PER_NODE} ports found") from exc


def launch(
    directory: Path, *, nodes: int, consensus: str, agencies: int, rng: random.Random
) -> Cluster:
    """Create a testnet in `directory` and start it; the caller must call teardown()."""
    base_port = free_base_port(nodes, rng=rng)
    run_cli(
        [
            "testnet",
            "--nodes",
            str(nodes),
            "--consensus",
            consensus,
            "--out",
            str(directory),
            "--base-port",
            str(base_port),
            "--agencies",
            str(agencies),
        ]
    )
    (directory / OWNER_MARKER).write_text("seoulchain bench\n", encoding="ascii")
    cluster = attach_directory(directory)
    cluster.owned = True
    try:
        run_cli(["cluster", "up", "--dir", str(directory), "--timeout", str(UP_TIMEOUT_S)])
    except ClusterError:
        teardown(cluster)
        raise
    return cluster


def clear_previous(directory: Path) -> None:
    """Make room for a fresh cluster at `directory`: nothing there is fine; a stopped
    cluster an earlier bench launched (it holds OWNER_MARKER) is deleted; anything else
    (a running cluster, or files the bench did not create) is refused."""
    if not directory.exists():
        return
    if not (directory / OWNER_MARKER).is_file():
        raise ClusterError(
            f"{directory} exists and was not made by the bench; choose another --out"
        )
    try:
        nodes = attach_directory(directory).nodes
    except ClusterError:
        nodes = []  # an earlier launch that failed before writing the homes
    running = [node.name for node in nodes if node.pid() is not None]
    if running:
        raise ClusterError(
            f"{directory}: {', '.join(running)} still running from an earlier bench; stop it "
            f"(seoulchain cluster down --dir {directory}) or measure it with --attach"
        )
    log.info("removing the stopped cluster of an earlier bench in %s", directory)
    shutil.rmtree(directory)


def attach_directory(directory: Path) -> Cluster:
    """The nodes of a testnet directory (nodeK/config.toml), not owned by this bench."""
    homes = sorted(
        (p for p in directory.glob("node*") if (p / "config.toml").is_file()),
        key=lambda p: (len(p.name), p.name),
    )
    if not homes:
        raise ClusterError(f"{directory}: no node homes (nodeK/config.toml)")
    return Cluster([_node_from_home(home) for home in homes], directory.resolve(), owned=False)


def _node_from_home(home: Path) -> NodeHandle:
    try:
        config = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
        rpc_address = str(config["rpc"]["listen_address"])
        metrics = config.get("metrics", {})
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise ClusterError(f"{home}/config.toml: unreadable: {error}") from None
    metrics_url = None
    if metrics.get("enabled", True) and metrics.get("listen_address"):
        metrics_url = f"http://{_loopback(str(metrics['listen_address']))}/metrics"
    return NodeHandle(
        name=home.name,
        rpc_url=f"http://{_loopback(rpc_address)}",
        metrics_url=metrics_url,
        home=home.resolve(),
    )


def _loopback(address: str) -> str:
    """A listen address as a dialable one (0.0.0.0 -> 127.0.0.1)."""
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "", "[::]") else address


def attach_urls(rpc_urls: list[str], metrics_urls: list[str] | None = None) -> Cluster:
    metrics = metrics_urls or []
    nodes = [
        NodeHandle(
            name=f"node{index}",
            rpc_url=url if "://" in url else f"http://{url}",
            metrics_url=metrics[index] if index < len(metrics) else None,
        )
        for index, url in enumerate(rpc_urls)
    ]
    if not nodes:
        raise ClusterError("--rpc needs at least one URL")
    return Cluster(nodes, None, owned=False)


def teardown(cluster: Cluster) -> str:
    """Stop the cluster if this bench started it; a line saying what happened."""
    if not cluster.owned or cluster.directory is None:
        return "cluster left running (attached, not started by the bench)"
    try:
        return run_cli(["cluster", "down", "--dir", str(cluster.directory)]).strip()
    except ClusterError as error:
        log.error("cluster teardown failed: %s", error)
        return f"teardown failed: {error}"


def kill_node(node: NodeHandle) -> int:
    """SIGKILL a node (a --fault); only a PID recorded in its home that still runs it."""
    pid = node.pid()
    if pid is None:
        raise ClusterError(f"{node.name}: no running PID recorded in its home; cannot kill")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    node.killed = True
    log.info("killed %s (pid %d) with SIGKILL", node.name, pid)
    return pid


def _runs_home(pid: int, home: Path) -> bool:
    """True if `pid` is alive, not a zombie, and its command line is `start --home <home>`
    (a PID reused by another program after a crash is left alone)."""
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat_text.rpartition(")")[2].split()[:1] == ["Z"]:
        return False
    arguments = [part.decode("utf-8", "replace") for part in cmdline]
    return "start" in arguments and any(Path(a) == home for a in arguments if a.startswith("/"))
