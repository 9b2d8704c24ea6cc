"""Real-process cluster harness for the issue-4 scenarios (tests/cluster/).

Builds a testnet with `node.cli_init.make_testnet` (what `seoulchain testnet` runs), starts
each node as its own `seoulchain start --home H` process in its own session, and controls
those processes by the PIDs this harness spawned, and by nothing else: SIGKILL, SIGTERM,
SIGSTOP and SIGCONT go only to a `Popen` we hold. Logs and PIDs go where `seoulchain
cluster` puts them (H/node.log, H/node.pid), so `seoulchain cluster status --dir D` works on
a harness cluster while a test runs.

Everything is bounded: every wait has a timeout, every load loop a count and a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import cluster as bench_cluster
from bench.ports import free_listen_port
from node.cli_init import NodePorts, make_testnet
from node.client import RpcClient, RpcError, RpcTransportError
from node.cluster import LOG_FILE, PID_FILE, start_command
from node.config import Config, load_config, write_config
from node.genesis import load_genesis
from node.keys import load_key_file
from protocol.crypto import SigningKey
from protocol.tx import Tx, sign_tx
from services.notary import encode_anchor

log = logging.getLogger(__name__)

TX_EXPIRY_HEIGHT = 1_000_000  # far beyond any height these tests reach
RPC_ERRORS = (RpcError, RpcTransportError)


# --- ports --------------------------------------------------------------------------------


def free_base_port(nodes: int) -> int:
    """A testnet base port P such that every p2p/rpc/metrics port of nodes 0..nodes-1
    (P+10i+{0,1,2}) is free right now, outside the ephemeral range (bench/ports.py).
    Random, so concurrent runs rarely meet."""
    return bench_cluster.free_base_port(nodes, rng=random.Random())


def free_port() -> int:
    """One free port for a listener, outside the ephemeral range (bench/ports.py)."""
    return free_listen_port()


# --- waiting ------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.1,
    what: str = "condition",
) -> float:
    """Poll `predicate` until it is true; returns seconds waited. TimeoutError naming
    `what` otherwise. RPC errors inside the predicate count as "not yet"."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        try:
            if await predicate():
                return time.monotonic() - started
        except RPC_ERRORS:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:g} s")
        await asyncio.sleep(interval_s)


# --- transactions -------------------------------------------------------------------------


@dataclass
class TxFactory:
    """Signed `notary.anchor` txs from one agency key: unique nonces and document hashes."""

    key: SigningKey
    chain_id: str
    tag: str
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def make(self) -> Tx:
        nonce = next(self._nonces)
        document = hashlib.sha256(f"{self.tag}/{nonce}".encode()).digest()
        return sign_tx(
            self.key,
            chain_id=self.chain_id,
            nonce=nonce,
            expiry_height=TX_EXPIRY_HEIGHT,
            kind="notary.anchor",
            body=encode_anchor(document, "certificate", {"seq": str(nonce)}),
        )

    def batch(self, count: int) -> list[Tx]:
        return [self.make() for _ in range(count)]


# --- processes ----------------------------------------------------------------------------


@dataclass
class NodeProcess:
    index: int
    home: Path
    config: Config
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalCluster:
    """N validator homes (plus optional extra homes) and the processes this test started."""

    def __init__(self, directory: Path, *, nodes: int, base_port: int) -> None:
        self.directory = directory
        self.base_port = base_port
        self.nodes: list[NodeProcess] = []
        for index in range(nodes):
            home = directory / f"node{index}"
            self.nodes.append(NodeProcess(index, home, load_config(home)))
        self.genesis = load_genesis(directory / "genesis.json")
        self.clients: dict[int, RpcClient] = {}
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        nodes: int = 4,
        tune: Callable[[Config], None] | None = None,
        consensus: str = "pbft",
    ) -> LocalCluster:
        """`seoulchain testnet` into `directory`, each config passed through `tune`."""
        base_port = free_base_port(nodes)
        make_testnet(directory, nodes=nodes, consensus=consensus, base_port=base_port)
        for index in range(nodes):
            home = directory / f"node{index}"
            config = load_config(home)
            fast_test_config(config)
            if tune is not None:
                tune(config)
            write_config(home, config, overwrite=True)
        return cls(directory, nodes=nodes, base_port=base_port)

    def add_home(self, home: Path) -> int:
        """Track an extra home (a follower, an observer); returns its index."""
        index = len(self.nodes)
        self.nodes.append(NodeProcess(index, home, load_config(home)))
        return index

    def ports(self, index: int) -> NodePorts:
        return NodePorts.for_index(self.base_port, index)

    def agency_key(self, k: int = 0) -> SigningKey:
        return load_key_file(self.directory / "agencies" / f"agency{k}.json")

    def tx_factory(self, tag: str, agency: int = 0) -> TxFactory:
        return TxFactory(self.agency_key(agency), self.genesis.chain_id, tag)

    def client(self, index: int) -> RpcClient:
        if index not in self.clients:
            node = self.nodes[index]
            self.clients[index] = RpcClient(node.config.rpc_url(), timeout_s=10.0)
        return self.clients[index]

    # --- process control (only PIDs we spawned) ---

    def start(self, index: int) -> int:
        node = self.nodes[index]
        assert not node.running(), f"node{index} already running"
        with (node.home / LOG_FILE).open("ab") as log_file:
            node.process = subprocess.Popen(
                start_command(node.home),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=node.home,
                start_new_session=True,
            )
        node.paused = False
        (node.home / PID_FILE).write_text(f"{node.process.pid}\n", encoding="ascii")
        log.info("started node%d as pid %d", index, node.process.pid)
        return node.process.pid

    def _signal(self, index: int, signum: signal.Signals) -> subprocess.Popen[bytes]:
        node = self.nodes[index]
        assert node.process is not None, f"node{index} was never started"
        assert node.running(), f"node{index} is not running"
        node.process.send_signal(signum)
        return node.process

    def kill(self, index: int) -> None:
        """kill -9, and reap it."""
        process = self._signal(index, signal.SIGKILL)
        process.wait(timeout=10)
        self.nodes[index].paused = False

    def terminate(self, index: int, *, grace_s: float = 10.0) -> None:
        process = self._signal(index, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def pause(self, index: int) -> None:
        self._signal(index, signal.SIGSTOP)
        self.nodes[index].paused = True

    def resume(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)
        self.nodes[index].paused = False

    def shutdown(self) -> None:
        """Stop every process we started: SIGCONT if paused, SIGTERM, then SIGKILL."""
        for node in self.nodes:
            if node.running() and node.paused:
                self.resume(node.index)
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=10)
            (node.home / PID_FILE).unlink(missing_ok=True)

    async def close_clients(self) -> None:
        for client in self.clients.values():
            await client.close()
        self.clients.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def log_tail(self, index: int, size: int = 3_000) -> str:
        path = self.nodes[index].home / LOG_FILE
        with contextlib.suppress(OSError), path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace")
        return "(no log)"

    def log_text(self, index: int) -> str:
        return (self.nodes[index].home / LOG_FILE).read_text(encoding="utf-8", errors="replace")

    # --- RPC views ---

    async def wait_healthy(self, indices: Sequence[int], *, timeout_s: float = 30.0) -> None:
        for index in indices:

            async def healthy(index: int = index) -> bool:
                if not self.nodes[index].running():
                    raise AssertionError(f"node{index} exited:\n{self.log_tail(index)}")
                await self.client(index).health()
                return True

            await wait_until(healthy, timeout_s=timeout_s, what=f"node{index} healthy")

    async def status(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.client(index).status()
        return result

    async def height(self, index: int) -> int:
        return int((await self.status(index))["sync_info"]["latest_block_height"])

    async def heights(self, indices: Sequence[int]) -> list[int]:
        return [await self.height(index) for index in indices]

    async def wait_height(self, indices: Sequence[int], height: int, *, timeout_s: float) -> float:
        async def reached() -> bool:
            return min(await self.heights(indices)) >= height

        return await wait_until(
            reached, timeout_s=timeout_s, what=f"nodes {list(indices)} at height {height}"
        )

    async def agreed_top(self, indices: Sequence[int], *, timeout_s: float) -> int:
        """Wait until every node in `indices` is at the highest height any of them reports;
        returns that height."""
        top = max(await self.heights(indices))
        await self.wait_height(indices, top, timeout_s=timeout_s)
        return top

    async def leader_seen_by(self, index: int) -> int:
        """The leader (PBFT primary, Raft leader) node `index` reports."""
        return int((await self.status(index))["consensus"]["leader"])

    def running_indices(self) -> list[int]:
        """The nodes whose processes are alive (a load's targets while some are killed)."""
        return [node.index for node in self.nodes if node.running()]

    async def metrics_text(self, index: int) -> str:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        host_port = self.nodes[index].config.metrics.listen_address
        timeout = aiohttp.ClientTimeout(total=5.0)
        async with self._http.get(f"http://{host_port}/metrics", timeout=timeout) as response:
            assert response.status == 200
            return await response.text()


@contextlib.asynccontextmanager
async def running_cluster(
    directory: Path,
    *,
    nodes: int,
    consensus: str = "pbft",
    tune: Callable[[Config], None] | None = None,
) -> AsyncIterator[LocalCluster]:
    """A fresh testnet in `directory` (configs through `tune`), every node started and
    healthy; its processes are stopped (by the PIDs we spawned) on the way out, whatever
    happened."""
    cluster = LocalCluster.create(directory, nodes=nodes, consensus=consensus, tune=tune)
    try:
        for index in range(nodes):
            cluster.start(index)
        await cluster.wait_healthy(range(nodes))
        yield cluster
    finally:
        cluster.shutdown()
        await cluster.close_clients()


def fast_test_config(config: Config) -> None:
    """Shorter reconnect backoff than the defaults (0.1-10 s), so a restarted or healed
    node is redialled within about a second and each scenario stays well under a minute.
    Everything else (ticks, view-change timeout, block interval) keeps its default."""
    config.p2p.backoff_min_s = 0.05
    config.p2p.backoff_max_s = 1.0


# --- load and chain comparison ----------------------------------------------------------


async def send_round_robin(
    cluster: LocalCluster, indices: Sequence[int], txs: Sequence[Tx], *, batch_txs: int
) -> list[str]:
    """broadcast_txs in batches, batch k to node indices[k % len]; every tx must be
    admitted (code 0). Returns the tx hashes (hex) in send order."""
    hashes: list[str] = []
    for number, start in enumerate(range(0, len(txs), batch_txs)):
        chunk = txs[start : start + batch_txs]
        target = indices[number % len(indices)]
        results = await cluster.client(target).broadcast_txs(list(chunk))
        for tx, result in zip(chunk, results, strict=True):
            assert result["code"] == 0, f"node{target} refused {tx.hash().hex()}: {result}"
            hashes.append(tx.hash().hex())
    return hashes


@dataclass
class LoadReport:
    acknowledged: list[str] = field(default_factory=list)  # committed per broadcast_tx_commit
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    started_s: float = 0.0
    ended_s: float = 0.0

    def rate_per_s(self) -> float:
        elapsed = max(1e-9, self.ended_s - self.started_s)
        return len(self.acknowledged) / elapsed


async def commit_load(
    cluster: LocalCluster,
    factory: TxFactory,
    targets: Callable[[], Sequence[int]],
    *,
    stop: asyncio.Event,
    txs_max: int,
    duration_s_max: float,
    concurrency: int = 4,
) -> LoadReport:
    """`concurrency` workers each send broadcast_tx_commit to a node from `targets()` in
    turn, until `stop`, `txs_max` sends, or `duration_s_max`. A tx is acknowledged only when
    the node answered with a committed result (tx_result code 0 and a height)."""
    report = LoadReport(started_s=time.monotonic())
    deadline = report.started_s + duration_s_max
    turn = itertools.count()

    async def worker() -> None:
        while not stop.is_set() and report.sent < txs_max and time.monotonic() < deadline:
            live = list(targets())
            if not live:
                await asyncio.sleep(0.05)
                continue
            target = live[next(turn) % len(live)]
            tx = factory.make()
            report.sent += 1
            try:
                answer = await cluster.client(target).broadcast_tx_commit(tx)
            except RPC_ERRORS as error:
                report.errors.append(f"node{target}: {error}")
                await asyncio.sleep(0.05)
                continue
            result = answer.get("tx_result")
            if result is not None and result.get("code") == 0 and answer.get("height", 0) > 0:
                report.acknowledged.append(tx.hash().hex())
            else:
                report.errors.append(f"node{target}: not committed: {answer}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.ended_s = time.monotonic()
    return report


@dataclass
class SentTx:
    tx_hash: str
    sent_s: float  # time.monotonic() when the node admitted it


async def sync_load(
    cluster: LocalCluster,
    factory: TxFactory,
    targets: Callable[[], Sequence[int]],
    *,
    stop: asyncio.Event,
    batch_txs: int = 10,
    interval_s: float = 0.1,
    txs_max: int,
    duration_s_max: float,
) -> list[SentTx]:
    """Fresh txs, `batch_txs` every `interval_s`, to the nodes of `targets()` in turn, by
    broadcast_txs (admission only, no waiting for commit), until `stop`, `txs_max` or
    `duration_s_max`. Returns the admitted ones with their send times."""
    sent: list[SentTx] = []
    deadline = time.monotonic() + duration_s_max
    turn = itertools.count()
    while not stop.is_set() and len(sent) < txs_max and time.monotonic() < deadline:
        live = list(targets())
        if live:
            target = live[next(turn) % len(live)]
            txs = factory.batch(batch_txs)
            with contextlib.suppress(*RPC_ERRORS):
                results = await cluster.client(target).broadcast_txs(txs)
                now = time.monotonic()
                sent.extend(
                    SentTx(tx.hash().hex(), now)
                    for tx, result in zip(txs, results, strict=True)
                    if result["code"] == 0
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    return sent


async def committed_subset(
    cluster: LocalCluster, index: int, tx_hashes: Sequence[str]
) -> list[str]:
    """The hashes in `tx_hashes` that node `index` has committed."""
    client = cluster.client(index)
    found: list[str] = []
    for start in range(0, len(tx_hashes), 10):
        chunk = tx_hashes[start : start + 10]
        results = await client.batch([("tx", {"hash": h}) for h in chunk])
        found.extend(h for h, r in zip(chunk, results, strict=True) if not isinstance(r, RpcError))
    return found


async def chain_of(client: RpcClient, upto: int) -> list[tuple[str, str]]:
    """(block hash, app hash after executing it) for heights 1..upto, via `blockchain`
    (20 headers a call) and `block_results` (in JSON-RPC batches of 10)."""
    block_hashes: dict[int, str] = {}
    for top in range(upto, 0, -20):
        answer = await client.call("blockchain", {"minHeight": max(1, top - 19), "maxHeight": top})
        for meta in answer["block_metas"]:
            block_hashes[int(meta["header"]["height"])] = meta["block_id"]["hash"]
    app_hashes: dict[int, str] = {}
    for start in range(1, upto + 1, 10):
        heights = list(range(start, min(upto, start + 9) + 1))
        results = await client.batch([("block_results", {"height": h}) for h in heights])
        for height, result in zip(heights, results, strict=True):
            if isinstance(result, RpcError):
                raise result
            app_hashes[height] = result["app_hash"]
    assert sorted(block_hashes) == list(range(1, upto + 1)), "blockchain skipped heights"
    return [(block_hashes[h], app_hashes[h]) for h in range(1, upto + 1)]


async def assert_same_chain(cluster: LocalCluster, indices: Sequence[int], upto: int) -> None:
    """Every node in `indices` holds the same block hash and app hash at heights 1..upto."""
    reference = await chain_of(cluster.client(indices[0]), upto)
    assert len(reference) == upto
    assert len({block for block, _ in reference}) == upto, "a block hash repeats"
    for index in indices[1:]:
        chain = await chain_of(cluster.client(index), upto)
        for height, (ours, theirs) in enumerate(zip(reference, chain, strict=True), start=1):
            assert ours == theirs, (
                f"node{indices[0]} and node{index} differ at height {height}: {ours} != {theirs}"
            )


async def assert_converged(
    cluster: LocalCluster, indices: Sequence[int], tx_hashes: Sequence[str], *, timeout_s: float
) -> int:
    """The end of every fault scenario: the nodes in `indices` reach the highest height any
    of them reports, hold the same chain up to it, and every tx in `tx_hashes` is committed
    on each of them. Returns that height."""
    top = await cluster.agreed_top(indices, timeout_s=timeout_s)
    await assert_same_chain(cluster, indices, top)
    await assert_txs_found(cluster, indices, tx_hashes)
    return top


async def assert_txs_found(
    cluster: LocalCluster, indices: Sequence[int], tx_hashes: Sequence[str]
) -> None:
    """Every tx is committed (found by `tx`, result code 0) on every node in `indices`."""
    for index in indices:
        client = cluster.client(index)
        for start in range(0, len(tx_hashes), 10):
            chunk = tx_hashes[start : start + 10]
            results = await client.batch([("tx", {"hash": h}) for h in chunk])
            for tx_hash, result in zip(chunk, results, strict=True):
                assert not isinstance(result, RpcError), f"node{index} lost tx {tx_hash}: {result}"
                assert result["tx_result"]["code"] == 0, result


async def all_committed(cluster: LocalCluster, index: int, tx_hashes: Sequence[str]) -> bool:
    """True when node `index` has every tx in `tx_hashes` committed (checked in batches)."""
    client = cluster.client(index)
    for start in range(0, len(tx_hashes), 10):
        chunk = tx_hashes[start : start + 10]
        results = await client.batch([("tx", {"hash": h}) for h in chunk])
        if any(isinstance(result, RpcError) for result in results):
            return False
    return True


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of `name{labels}` in a Prometheus exposition (0 if absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series == wanted:
            total += float(value)
    return total
