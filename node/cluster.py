"""A local cluster of real node processes: start, inspect, stop (`seoulchain cluster ...`).

Each node runs as its own `seoulchain start --home DIR/nodeK` process, in its own session
(so a Ctrl-C in the terminal that started the cluster does not kill it), with stdout and
stderr appended to DIR/nodeK/node.log and its PID in DIR/nodeK/node.pid. `down` signals only
PIDs recorded there, and only if that PID still runs `start --home <that home>` (a PID
reused by another program after a crash is left alone): SIGTERM first, SIGKILL after a
grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.cli_common import CliError
from node.cli_init import DEFAULT_BASE_PORT, make_testnet
from node.cli_rpc import RpcCallError, call
from node.config import CONFIG_FILE, load_config

log = logging.getLogger(__name__)

PID_FILE = "node.pid"
LOG_FILE = "node.log"
HEALTH_POLL_S = 0.2
UP_TIMEOUT_S_DEFAULT = 30.0
DOWN_GRACE_S_DEFAULT = 10.0
LOG_TAIL_BYTES = 2_000
# Popen objects of nodes this process started: kept so they are reaped (no zombies, no
# "subprocess still running" warnings) when `down` runs in the same process, as in tests.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(slots=True)
class NodeState:
    name: str
    home: Path
    pid: int | None
    alive: bool
    rpc_url: str
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def node_homes(directory: Path) -> list[Path]:
    homes = [p for p in directory.glob("node*") if (p / CONFIG_FILE).is_file()]
    return sorted(homes, key=lambda p: (len(p.name), p.name))


def start_command(home: Path) -> list[str]:
    """`seoulchain start --home H`, using the console script next to this interpreter."""
    script = Path(sys.executable).parent / "seoulchain"
    if script.exists():
        return [str(script), "start", "--home", str(home)]
    return [sys.executable, "-m", "node.cli", "start", "--home", str(home)]


def read_pid(home: Path) -> int | None:
    try:
        text = (home / PID_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_our_node(pid: int, home: Path) -> bool:
    """True if `pid` is alive (not a zombie) and is the start command for `home`."""
    popen = _STARTED.get(pid)
    if popen is not None and popen.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return False
    args = [part.decode("utf-8", "replace") for part in cmdline]
    return "start" in args and str(home) in args


def cluster_up(
    directory: Path,
    *,
    nodes: int,
    consensus: str,
    base_port: int = DEFAULT_BASE_PORT,
    timeout_s: float = UP_TIMEOUT_S_DEFAULT,
) -> list[NodeState]:
    """Create a testnet in `directory` if it has none, start every node not already
    running, and wait until each answers `health`."""
    directory = directory.resolve()
    if not node_homes(directory):
        directory.mkdir(parents=True, exist_ok=True)
        make_testnet(directory, nodes=nodes, consensus=consensus, base_port=base_port)
    homes = node_homes(directory)
    for home in homes:
        pid = read_pid(home)
        if pid is not None and is_our_node(pid, home):
            log.info("%s already running as pid %d", home.name, pid)
            continue
        _spawn(home)
    asyncio.run(_wait_healthy(homes, timeout_s=timeout_s))
    return cluster_status(directory)


def _spawn(home: Path) -> int:
    with (home / LOG_FILE).open("ab") as log_file:
        process = subprocess.Popen(
            start_command(home),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,
        )
    _STARTED[process.pid] = process
    (home / PID_FILE).write_text(f"{process.pid}\n", encoding="ascii")
    log.info("started %s as pid %d", home.name, process.pid)
    return process.pid


async def _wait_healthy(homes: list[Path], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for home in homes:
        url = load_config(home).rpc_url()
        while True:
            pid = read_pid(home)
            if pid is None or not is_our_node(pid, home):
                raise CliError(f"{home.name} exited during start; log tail:\n{_log_tail(home)}")
            try:
                await call(url, "health", timeout_s=2.0)
                break
            except RpcCallError as error:
                if time.monotonic() > deadline:
                    raise CliError(
                        f"{home.name} not healthy after {timeout_s:g} s: {error}"
                    ) from None
            await asyncio.sleep(HEALTH_POLL_S)


def _log_tail(home: Path) -> str:
    try:
        with (home / LOG_FILE).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def cluster_status(directory: Path) -> list[NodeState]:
    directory = directory.resolve()
    homes = node_homes(directory)
    if not homes:
        raise CliError(f"{directory}: no cluster here (no nodeK/config.toml)")
    return asyncio.run(_statuses(homes))


async def _statuses(homes: list[Path]) -> list[NodeState]:
    states = []
    for home in homes:
        pid = read_pid(home)
        state = NodeState(
            name=home.name,
            home=home,
            pid=pid,
            alive=pid is not None and is_our_node(pid, home),
            rpc_url=load_config(home).rpc_url(),
        )
        if state.alive:
            try:
                state.info["status"] = await call(state.rpc_url, "status", timeout_s=3.0)
                state.info["net_info"] = await call(state.rpc_url, "net_info", timeout_s=3.0)
            except RpcCallError as error:
                state.error = str(error)
        states.append(state)
    return states


def cluster_down(directory: Path, *, grace_s: float = DOWN_GRACE_S_DEFAULT) -> list[str]:
    """Stop every recorded node: SIGTERM, then SIGKILL after `grace_s`. Lines of what
    happened to each."""
    directory = directory.resolve()
    report = []
    running: dict[int, Path] = {}
    for home in node_homes(directory):
        pid = read_pid(home)
        if pid is None:
            report.append(f"{home.name}: no pid recorded")
        elif not is_our_node(pid, home):
            report.append(f"{home.name}: pid {pid} not running")
            (home / PID_FILE).unlink(missing_ok=True)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            running[pid] = home
    deadline = time.monotonic() + grace_s
    while running and time.monotonic() < deadline:
        for pid in [p for p, home in running.items() if not is_our_node(p, home)]:
            report.append(f"{running.pop(pid).name}: pid {pid} stopped")
        time.sleep(0.05)
    for pid, home in running.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        report.append(f"{home.name}: pid {pid} killed after {grace_s:g} s")
    for home in node_homes(directory):
        pid = read_pid(home)
        if pid is not None and not is_our_node(pid, home):
            (home / PID_FILE).unlink(missing_ok=True)
    _reap()
    return report


def _reap() -> None:
    for pid, process in list(_STARTED.items()):
        if process.poll() is not None:
            del _STARTED[pid]
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2.0)
            del _STARTED[pid]


def status_line(state: NodeState) -> str:
    """One line per node: pid/alive, height, view or term, leader, role, peers."""
    pid = f"pid {state.pid}" if state.pid is not None else "no pid"
    if not state.alive:
        return f"{state.name}: {pid} DOWN"
    if state.error:
        return f"{state.name}: {pid} up, rpc error: {state.error}"
    status = state.info.get("status", {})
    net = state.info.get("net_info", {})
    fields = {
        "height": _find(status, ("latest_block_height", "height", "committed_height")),
        "round": _find(status, ("view", "term", "round")),
        "leader": _find(status, ("leader", "primary")),
        "role": _find(status, ("role",)),
        "peers": _find(net, ("n_peers",)),
    }
    if fields["peers"] is None and isinstance(net.get("peers"), list):
        fields["peers"] = len(net["peers"])
    shown = " ".join(f"{name}={value}" for name, value in fields.items() if value is not None)
    return f"{state.name}: {pid} up {shown} ({state.rpc_url})"


def _find(value: Any, names: tuple[str, ...], depth: int = 0) -> Any:
    """The first value under any of `names`, searched breadth-first through nested dicts:
    status shapes differ by engine, and this line only reports them."""
    if not isinstance(value, dict) or depth > 4:
        return None
    for name in names:
        if name in value and not isinstance(value[name], dict | list):
            return value[name]
    for child in value.values():
        found = _find(child, names, depth + 1)
        if found is not None:
            return found
    return None
