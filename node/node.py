"""A running node: wires store, services, mempool, engine driver, commit pipeline, RPC and
metrics, and implements node/api.py's NodeApi for the RPC layer.

Start-up order: open the store (refusing a store made for another genesis), write the
genesis state on first start, build the engine from genesis (never from local config),
then start executing, stepping, serving. Shutdown is the reverse; a crash at any point is
safe because every committed block is one synced batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from consensus.types import (
    BlockExecuted,
    EngineStatus,
    Envelope,
    FetchRequest,
    MessageCodec,
    Propose,
)
from node import limits
from node.api import CommittedTx, SubmitResult, TxProof
from node.carried import CarriedTxs
from node.commits import CommitPipeline
from node.config import Config, load_config
from node.custody import TxCustody
from node.driver import EngineDriver
from node.engines import EngineSetupError, build_engine, undecided_blocks
from node.events import EventBus
from node.executor import BlockExecutor, ExecutedBlock, StoreStateView
from node.genesis import Genesis, load_genesis
from node.keys import load_key_file
from node.mempool import Mempool, MempoolLimits
from node.metrics import MetricsServer, NodeMetrics
from node.metrics_sync import MetricsSync
from node.network import NodeNetwork, net_info_document
from node.notices import new_block_event, tx_event
from node.p2p_setup import build_p2p_node, split_address
from node.producer import BlockProducer, ProducerConfig
from node.queries import ChainReader
from node.rpc.config import RpcConfig
from node.rpc.server import RpcServer
from node.standby import StandbyKeeper, StandbyStore
from node.standby_verify import StandbyVerifier
from node.status import status_document
from node.waiters import CommitWaiters
from protocol.crypto import SigningKey
from protocol.proof import ResultProof
from protocol.results import TxResult
from protocol.sealed import SealedBlock
from protocol.tx import Tx
from services.app import SeoulApplication
from services.interface import QueryResult
from storage.interface import ChainStore
from storage.leveldb import LevelDbChainStore

log = logging.getLogger(__name__)


class Node:
    def __init__(
        self,
        *,
        config: Config,
        genesis: Genesis,
        key: SigningKey,
        store: ChainStore,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.chain_genesis = genesis
        self.key = key
        self.store = store
        self.metrics = NodeMetrics(registry or CollectorRegistry())
        self.app = SeoulApplication(genesis.services_genesis())
        self._init_store()
        self.reader = ChainReader(store)
        self._state = StoreStateView(store)
        height = store.committed_height()
        # Txs of others' undecided blocks: the custody records them, the pool and standby
        # keep them (and copies that arrive later) out of our proposals (node/carried.py).
        self.carried = CarriedTxs(per_height_max=limits.held_txs_per_height_max)
        self.mempool = Mempool(
            chain_id=genesis.chain_id,
            next_height=height + 1,
            pool_limits=MempoolLimits(
                max_txs=config.mempool.max_txs,
                max_bytes=config.mempool.max_bytes,
                max_tx_bytes=config.mempool.max_tx_bytes,
                max_txs_per_signer=config.mempool.max_txs_per_signer,
                verified_cache_size=config.mempool.verified_cache_size,
            ),
            admit=self._admit,
            on_reject=self.metrics.mempool_rejected,
            carried=self.carried,
        )
        self._rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        built = build_engine(
            genesis,
            key=key,
            store=store,
            view_change_timeout_ticks=config.consensus.view_change_timeout_ticks,
            election_timeout_ticks=config.consensus.election_timeout_ticks_min,
            election_timeout_ticks_max=config.consensus.election_timeout_ticks_max,
            heartbeat_ticks=config.consensus.heartbeat_ticks,
            rng=self._rng,
        )
        self.codec = built.codec
        self.executor = BlockExecutor(
            store=store,
            app=self.app,
            chain_id=genesis.chain_id,
            pipeline_depth=genesis.consensus.pipeline_depth,
            state=self._state,
        )
        self.commits = CommitPipeline(self.executor, queue_max=limits.commit_queue_blocks_max)
        self.commits.add_listener(self._on_executed)
        self.producer = BlockProducer(
            self._producer_config(),
            key=key,
            txs=self.mempool,
            exec_fields=self.executor.expected_exec_fields,
            monotonic_ms=lambda: int(time.monotonic() * 1000),
            wall_ms=lambda: int(time.time() * 1000),
        )
        last = self.reader.sealed_block(height) if height else None
        if last is not None:
            self.producer.on_committed(
                height=height, tx_count=len(last.block.txs), time_ms=last.block.header.time_ms
            )
        self.driver = EngineDriver(
            built.engine,
            persist=store.consensus_write,
            send=self._send,
            commit=self.commits.enqueue,
            fetch=self._fetch,
            after_step=self._after_step,
            tick_ms=config.consensus.tick_ms,
            peer_inbox_max=limits.consensus_inbox_max,
            on_persist=self._observe_persist,
        )
        self.standby = StandbyStore(
            txs_max=limits.standby_txs_max,
            bytes_max=limits.standby_bytes_max,
            on_evict=self._forget_in_gossip,
            carried=self.carried,
        )
        self.standby_keeper = StandbyKeeper(
            self.standby,
            mempool=self.mempool,
            forget=self._forget_in_gossip,
            on_task_done=self._task_ended,
            batch_txs=limits.standby_promote_batch_txs,
            idle_admit_txs=limits.standby_idle_admit_txs,
        )
        self.standby_verifier = StandbyVerifier(
            self.standby,
            mempool=self.mempool,
            queue_txs_max=limits.standby_verify_queue_txs_max,
            chunk_txs=limits.standby_verify_chunk_txs,
            on_task_done=self._task_ended,
        )
        self.custody = TxCustody(
            mempool=self.mempool,
            standby=self.standby,
            standby_keeper=self.standby_keeper,
            carried=self.carried,
            committed_height=store.committed_height,
        )
        for block in undecided_blocks(built.engine):
            self.custody.hold_carried_txs(block)  # the pool did not survive a restart, the log did
        self.network = self._build_network(built.codec)
        self.bus = EventBus(
            subscriptions_max=config.rpc.max_subscription_clients * 5,
            on_drop=lambda _subscription: self.metrics.events_dropped_total.inc(),
        )
        self.waiters = CommitWaiters(waiters_max=limits.commit_waiters_max)
        self._last_commit_monotonic: float | None = None
        self._last_round = self.driver.status().round
        self._started_monotonic = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self.stopped = asyncio.Event()
        self.rpc: RpcServer | None = None
        self.metrics_server: MetricsServer | None = None
        self.metrics.consensus_height.set(height)

    # --- lifecycle ----------------------------------------------------------------------

    def _init_store(self) -> None:
        genesis_hash = self.chain_genesis.genesis_hash()
        stored = self.store.genesis_hash()
        if stored is None:
            self.store.set_genesis(
                genesis_hash=genesis_hash,
                app_hash=self.app.genesis_app_hash(),
                state_writes=self.app.genesis_writes(),
            )
        elif stored != genesis_hash:
            raise EngineSetupError(
                "the store was created for another genesis "
                f"(store {stored.hex()[:16]}…, genesis.json {genesis_hash.hex()[:16]}…)"
            )

    def _producer_config(self) -> ProducerConfig:
        consensus = self.config.consensus
        return ProducerConfig(
            chain_id=self.chain_genesis.chain_id,
            validators_hash=self.chain_genesis.validator_set().hash(),
            pipeline_depth=self.chain_genesis.consensus.pipeline_depth,
            block_max_txs=consensus.block_max_txs,
            block_max_bytes=consensus.block_max_bytes,
            block_interval_ms=consensus.block_interval_ms,
            create_empty_blocks=consensus.create_empty_blocks,
            empty_block_interval_ms=max(consensus.block_interval_ms, 1000),
        )

    async def start(self) -> None:
        rpc_host, rpc_port = split_address(self.config.rpc.listen_address)
        self.rpc = RpcServer(
            self,
            config=RpcConfig(
                host=rpc_host,
                port=rpc_port,
                body_bytes_max=self.config.rpc.max_body_bytes,
                batch_requests_max=self.config.rpc.max_batch,
                connections_open_max=self.config.rpc.max_open_connections,
                ws_clients_max=self.config.rpc.max_subscription_clients,
                commit_timeout_s=self.config.rpc.commit_timeout_s,
                cors_allowed_origins=tuple(self.config.rpc.cors_allowed_origins),
            ),
            metrics=self.metrics,
            bus=self.bus,
        )
        self._tasks = [
            asyncio.create_task(self.commits.run(), name="commits"),
            asyncio.create_task(self.driver.run(), name="driver"),
        ]
        self._metrics_sync: MetricsSync | None = None
        if self.network is not None:
            names = {v.public_key: v.name for v in self.chain_genesis.validators}
            self._metrics_sync = MetricsSync(
                metrics=self.metrics, network=self.network, peer_names=names
            )
            self._tasks.append(asyncio.create_task(self._metrics_sync.run(), name="metrics-sync"))
            reoffer = self.custody.reoffer_stale_txs(
                self.network, status=self.driver.status, idle_s=self._idle_s
            )
            self._tasks.append(asyncio.create_task(reoffer, name="reoffer"))
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        if self.network is not None:
            await self.network.start()
        await self.rpc.start()
        if self.config.metrics.enabled:
            host, port = split_address(self.config.metrics.listen_address)
            self.metrics_server = MetricsServer(
                self.metrics.registry,
                host=host,
                port=port,
                before_scrape=self._metrics_sync.sync if self._metrics_sync else None,
            )
            await self.metrics_server.start()
        log.info(
            "node started chain=%s height=%d consensus=%s rpc=%s:%d",
            self.chain_genesis.chain_id,
            self.store.committed_height(),
            self.chain_genesis.consensus.kind,
            rpc_host,
            self.rpc.port,
        )

    async def _hand_over_leadership(self) -> None:
        """A Raft leader shutting down gracefully hands leadership to its most up-to-date
        follower first (thesis §3.10), so the cluster does not sit out an election timeout."""
        status = self.driver.status()
        if status.kind != "raft" or status.role != "leader" or self.failure is not None:
            return
        transfer = getattr(self.driver.engine, "transfer_leadership", None)
        if transfer is None or any(task.done() for task in self._tasks):
            return
        try:
            await asyncio.wait_for(self.driver.call(lambda _engine: transfer()), timeout=1.0)
            await asyncio.sleep(self.config.consensus.tick_ms * 3 / 1000)  # let it leave
        except TimeoutError:
            log.warning("leadership transfer did not complete before shutdown")

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.critical(
                "CONSENSUS FAILURE: %s stopped: %r; halting the node",
                task.get_name(),
                error,
                exc_info=error,
            )
            self.failure = error
            self.stopped.set()

    async def stop(self) -> None:
        await self._hand_over_leadership()
        await self.standby_keeper.stop()
        await self.standby_verifier.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.commits.settle()  # a worker thread may still be writing to the store
        await self.driver.settle()
        if self.network is not None:
            await self.network.stop()
        if self.rpc is not None:
            await self.rpc.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        self.bus.close()
        self.mempool.close()
        self.store.close()

    # --- engine plumbing ------------------------------------------------------------------

    def _admit(self, tx: Tx, next_height: int) -> TxResult:
        return self.app.check_tx(tx, self._state, next_height=next_height)

    def _build_network(self, codec: MessageCodec | None) -> NodeNetwork | None:
        genesis = self.chain_genesis
        validators = genesis.validator_set()
        is_validator = validators.index_of(self.key.public_key) is not None
        if genesis.consensus.kind == "solo" and is_validator:
            return None  # a chain of one has no peers
        p2p = build_p2p_node(genesis, self.config.p2p, key=self.key, rng=self._rng)
        return NodeNetwork(
            p2p=p2p,
            validators=validators,
            own_key=self.key.public_key,
            codec=codec,
            driver=self.driver,
            mempool=self.mempool,
            reader=self.reader,
            rng=self._rng,
            on_carried_block=self.custody.hold_carried_txs,
            standby=self.standby,
            is_leader=lambda: self.standby_keeper.leading,
            standby_verifier=self.standby_verifier,
            txs_to_leader=genesis.consensus.kind == "raft",
        )

    def _send(self, envelope: Envelope) -> None:
        assert self.network is not None, "an engine without peers tried to send"
        self.network.send(envelope)
        self.metrics.consensus_message(type(envelope.message).__name__, direction="out")

    def _fetch(self, request: FetchRequest) -> None:
        if self.network is not None:
            self.network.fetch(request)

    def _after_step(self, status: EngineStatus) -> None:
        if status.round > self._last_round:
            if status.kind == "pbft":  # a Raft term change is an election, not a view change
                self.metrics.consensus_view_changes_total.inc(status.round - self._last_round)
            self._last_round = status.round
            self.metrics.consensus_view.set(status.round)
        self._track_leadership(status)
        block = self.producer.maybe_build(status)
        if block is None:
            return
        hashes = tuple(tx.hash() for tx in block.txs)
        self.custody.note_proposed(block.height, time.monotonic(), hashes)
        self.driver.post_control(Propose(block))

    # --- standby txs (node/standby.py) -----------------------------------------------------

    def _track_leadership(self, status: EngineStatus) -> None:
        """The leader admits gossiped txs in full, the other validators keep them in standby
        (NodeNetwork asks the keeper); on becoming leader, standby txs are promoted. A Raft
        validator's network also learns where to send its txs (`note_leader`)."""
        if self.network is not None and self.network.standby is not None:
            self.standby_keeper.track(leading=status.leader == status.node_id, round_=status.round)
            self.network.note_leader(status.leader)

    def _idle_s(self) -> float:
        last = self._last_commit_monotonic or self._started_monotonic
        return time.monotonic() - last

    def _forget_in_gossip(self, tx_hash: bytes) -> None:
        """A tx that left standby unadmitted (evicted, or refused while the pool was full)
        must get through gossip's seen-cache when its client's node re-offers it."""
        if self.network is not None:
            self.network.gossip.forget_digest(tx_hash)

    def _on_executed(self, executed: ExecutedBlock) -> None:
        block = executed.sealed.block
        height = block.height
        self.driver.post_control(
            BlockExecuted(
                height=height,
                block_hash=executed.block_hash,
                app_hash=executed.outcome.app_hash,
                results_root=executed.outcome.results_root,
            )
        )
        self.mempool.remove_committed(block.txs, committed_height=height)
        self.standby.remove(executed.tx_hashes)
        self._observe_commit(executed)  # before the release forgets when it was proposed
        self.custody.release_abandoned_proposals(height, set(executed.tx_hashes))
        self.producer.on_committed(
            height=height, tx_count=len(block.txs), time_ms=block.header.time_ms
        )
        self._announce(executed)

    def _observe_persist(self, seconds: float, outputs: int) -> None:
        self.metrics.consensus_persist_seconds.observe(seconds)
        self.metrics.consensus_persist_outputs.observe(outputs)

    def _observe_commit(self, executed: ExecutedBlock) -> None:
        now = time.monotonic()
        block = executed.sealed.block
        metrics = self.metrics
        metrics.consensus_height.set(block.height)
        metrics.consensus_block_txs.observe(len(block.txs))
        if self._last_commit_monotonic is not None:
            metrics.consensus_block_interval_seconds.observe(now - self._last_commit_monotonic)
        self._last_commit_monotonic = now
        proposed_at = self.custody.proposed_at(block.height)
        if proposed_at is not None and block.header.proposer == self.key.public_key:
            # Our block won its height. A PBFT backup's empty "txs wait here" proposal
            # (node/producer.py) never commits: its height is not counted.
            metrics.consensus_commit_seconds.observe(now - proposed_at)
        metrics.storage_commit_seconds.observe(executed.store_seconds)
        metrics.mempool_size.set(self.mempool.pending_count())
        metrics.mempool_bytes.set(self.mempool.size_bytes())
        counters = self.standby.counters
        metrics.observe_standby(
            txs=len(self.standby),
            size_bytes=self.standby.size_bytes(),
            evicted=counters.evicted,
            promoted=counters.promoted,
        )
        verify = self.standby_verifier.counters
        metrics.observe_standby_verify(forged=verify.forged, skipped=verify.skipped_full)
        metrics.observe_signature_checks(self.mempool.counters.verifications)

    def _announce(self, executed: ExecutedBlock) -> None:
        sealed = executed.sealed
        height = sealed.height
        results = executed.outcome.results
        publish_txs = self.bus.wants("Tx")
        if publish_txs or len(self.waiters):  # one event per tx: skip it if nobody listens
            pairs = zip(sealed.block.txs, executed.tx_hashes, strict=True)
            for index, (tx, tx_hash) in enumerate(pairs):
                committed = CommittedTx(
                    tx_hash=tx_hash, height=height, index=index, tx=tx, result=results[index]
                )
                self.waiters.resolve(committed)
                if publish_txs:
                    self.bus.publish(tx_event(committed, executed))
        if self.bus.wants("NewBlock"):
            self.bus.publish(new_block_event(executed))

    # --- NodeApi: info ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return status_document(self)

    def genesis(self) -> dict[str, Any]:
        return self.chain_genesis.to_dict()

    def validators(self) -> list[dict[str, Any]]:
        return [
            {
                "index": index,
                "name": validator.name,
                "pub_key": validator.public_key.hex(),
                "voting_power": 1,
                "p2p_address": validator.p2p_address,
                "rpc_address": validator.rpc_address,
            }
            for index, validator in enumerate(self.chain_genesis.validators)
        ]

    def net_info(self) -> dict[str, Any]:
        if self.network is None:
            return {"listening": False, "n_peers": 0, "peers": []}
        return net_info_document(self.network, self.chain_genesis)

    def health(self) -> dict[str, Any]:
        if self.failure is not None:
            raise RuntimeError(f"node halted: {self.failure}")
        return {}

    # --- NodeApi: transactions ----------------------------------------------------------------

    async def submit_tx(self, raw: bytes) -> SubmitResult:
        admission = self.mempool.add(raw)
        if admission.added and self.network is not None:
            self.network.gossip_txs([raw], [admission.tx_hash])
        self.metrics.mempool_received_total.inc()
        self.metrics.mempool_size.set(self.mempool.pending_count())
        return admission.result

    async def submit_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        admissions = await self.mempool.add_batch(raws)
        if self.network is not None:
            gossiped: list[bytes] = []
            digests: list[bytes] = []
            for raw, admission in zip(raws, admissions, strict=True):
                if admission.added:
                    gossiped.append(raw)
                    digests.append(admission.tx_hash)
            if gossiped:
                self.network.gossip_txs(gossiped, digests)
        self.metrics.mempool_received_total.inc(len(raws))
        self.metrics.mempool_size.set(self.mempool.pending_count())
        return [admission.result for admission in admissions]

    async def wait_for_commit(self, tx_hash: bytes, *, timeout_s: float) -> CommittedTx | None:
        committed = self.reader.committed_tx(tx_hash)
        if committed is not None:
            return committed
        return await self.waiters.wait(tx_hash, timeout_s=timeout_s)

    def num_unconfirmed_txs(self) -> tuple[int, int]:
        return len(self.mempool), self.mempool.size_bytes()

    def unconfirmed_txs(self, limit: int) -> list[Tx]:
        return self.mempool.pending_txs(limit)

    # --- NodeApi: blocks and txs ----------------------------------------------------------------

    def latest_height(self) -> int:
        return self.reader.latest_height()

    def sealed_block(self, height: int) -> SealedBlock | None:
        return self.reader.sealed_block(height)

    def block_height_of(self, block_hash: bytes) -> int | None:
        return self.store.height_of(block_hash)

    def block_results(self, height: int) -> tuple[TxResult, ...] | None:
        return self.reader.block_results(height)

    def app_hash(self, height: int) -> bytes | None:
        return self.store.app_hash(height)

    def committed_tx(self, tx_hash: bytes) -> CommittedTx | None:
        return self.reader.committed_tx(tx_hash)

    def tx_proof(self, tx_hash: bytes) -> TxProof | None:
        return self.reader.tx_proof(tx_hash)

    def result_proof(self, tx_hash: bytes) -> ResultProof | None:
        depth = self.chain_genesis.consensus.pipeline_depth
        return self.reader.result_proof(tx_hash, pipeline_depth=depth)

    def query(self, path: str, params: Mapping[str, str]) -> QueryResult:
        # One snapshot for the whole query: the executor thread may commit a block while
        # it reads, and a query of several keys (two balances, a document and its
        # revocation) must not see half of that block. The answer names its height.
        with self.store.state_snapshot() as snapshot:
            result = self.app.query(path, params, snapshot)
        # Services cannot see the committed height; a service that knows better (a
        # historical read) fills it in itself.
        return result if result.height else dataclasses.replace(result, height=snapshot.height)

    def event_bus(self) -> EventBus:
        return self.bus


async def run_node(home: Path) -> None:
    """`seoulchain start --home H`: run until SIGINT/SIGTERM, or until a component fails."""
    config = load_config(home)
    genesis = load_genesis(config.genesis_path)
    key = load_key_file(config.key_path)
    store = LevelDbChainStore(config.db_path)
    node = Node(config=config, genesis=genesis, key=key, store=store)
    loop = asyncio.get_running_loop()
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, node.stopped.set)
    await node.start()
    try:
        await node.stopped.wait()
    finally:
        log.info("node stopping")
        await node.stop()
    if node.failure is not None:
        raise SystemExit(f"node halted: {node.failure}")
