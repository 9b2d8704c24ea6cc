"""The node's side of p2p: consensus messages, tx gossip and block sync on three channels.

Ingress of a consensus message, in order (STYLE §3.4): the sender must be a genesis
validator (observers take no part in consensus) → strict decode by the engine's codec →
`codec.invalid` (stateless checks and every signature) → every tx of any block the message
carries has a valid signature (cached: a tx gossiped earlier was verified then) → the
driver's bounded inbox. A failure at any step is the peer's fault: dropped, counted by
reason, logged at warning. Messages from one peer are processed in arrival order by one
worker per peer, with a bounded queue, so a slow signature batch from one peer neither
reorders its messages nor stalls the others. A backup verifies gossiped txs in the
background as they arrive (standby, below), so that worker mostly finds cache hits; it
waits for a background chunk still in flight that shares txs with the block.

Tx gossip between validators (a full mesh): a tx a client sent us is flooded to every peer.
A tx gossiped by another validator is not relayed (its sender sent it to every validator):
the leader admits it in full into the pool; any other validator keeps it raw in the
standby store (node/standby.py) until it commits, is carried by a proposal, is evicted, or
this node becomes the leader and promotes it; its signature is checked in the background
meanwhile (StandbyVerifier), so the block carrying it usually finds it verified. Gossip
from a non-validator, and any gossip at a non-validator, is admitted and relayed as a
client tx is (observers need not be connected to every validator, so their txs must
travel on).

A Raft follower (`txs_to_leader`) sends its clients' txs to the leader only, as etcd
forwards proposals. PBFT floods because its backups must hold the txs a primary might
censor (f + 1 of them suspect it); Raft trusts its leader not to lie, and a follower's
copy of another follower's tx is a second receive of what the AppendEntries bring anyway.
The leader still floods its own clients' txs, so that they outlive it in the followers'
standby stores if it crashes; every tx thus sits on at least two validators. Liveness
keeps the custody rules: the node that took a tx from its client holds it in its pool
until it commits, re-offers it to the leader when it waits (`reoffer_to_leader`), and
offers every waiting tx to a new leader at once (`note_leader`). While no leader is known
(an election), or it is not connected, txs are flooded as PBFT's are.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence

from consensus.types import Envelope, Fetched, FetchRequest, MessageCodec, NodeId, Received
from node import limits
from node.blocksync import BlockSync
from node.driver import EngineDriver
from node.genesis import Genesis
from node.mempool import Admission, Mempool
from node.queries import ChainReader
from node.standby import PASSING_REFUSALS, StandbyStore
from node.standby_verify import StandbyVerifier
from p2p.config import FRAME_OVERHEAD_BYTES
from p2p.gossip import GossipLimits, TxGossip
from p2p.manager import P2PNode
from protocol.block import Block
from protocol.encoding import DecodeError
from protocol.limits import tx_bytes_max
from protocol.sealed import SealedBlock
from protocol.validators import ValidatorSet

log = logging.getLogger(__name__)

CHANNEL_CONSENSUS = 1
CHANNEL_TXS = 2
CHANNEL_SYNC = 3

_PEER_INGRESS_MAX = 1_000  # consensus messages queued per peer before dropping
_REGOSSIP_TXS_MAX = 20_000  # pending txs offered to a peer that (re)connects
_REJECTIONS_LOGGED = 10  # per reason, before logging only every 1,000th


class NodeNetwork:
    def __init__(
        self,
        *,
        p2p: P2PNode,
        validators: ValidatorSet,
        own_key: bytes,
        codec: MessageCodec | None,
        driver: EngineDriver,
        mempool: Mempool,
        reader: ChainReader,
        rng: random.Random,
        on_carried_block: Callable[[Block], None] = lambda _block: None,
        standby: StandbyStore | None = None,
        is_leader: Callable[[], bool] = lambda: False,
        standby_verifier: StandbyVerifier | None = None,
        txs_to_leader: bool = False,
    ) -> None:
        self.p2p = p2p
        self._on_carried_block = on_carried_block
        self._validators = validators
        self._own_key = own_key
        # Only a validator keeps standby txs; a non-validator admits and relays (see above).
        self.standby = standby if validators.index_of(own_key) is not None else None
        self._is_leader = is_leader
        # Raft: a follower's txs go to the leader alone (see above); `note_leader` tracks it.
        self._txs_to_leader = txs_to_leader and self.standby is not None
        self._leader_key: bytes | None = None
        self._standby_verifier = standby_verifier if self.standby is not None else None
        self._codec = codec
        self._driver = driver
        self._mempool = mempool
        self._rng = rng
        self.rejected: Counter[str] = Counter()
        self.messages_in: Counter[str] = Counter()
        self.messages_out: Counter[str] = Counter()
        self._ingress: dict[bytes, asyncio.Queue[object]] = {}
        self._workers: dict[bytes, asyncio.Task[None]] = {}
        self._admissions: set[asyncio.Task[None]] = set()  # one per gossip batch in flight
        message_bytes_max = p2p.config.limits.frame_bytes_max - FRAME_OVERHEAD_BYTES
        if codec is not None:
            p2p.register_channel(
                CHANNEL_CONSENSUS,
                self._on_consensus,
                send_queue_max=1_024,
                message_bytes_max=message_bytes_max,
            )
        self.gossip = TxGossip(
            p2p,
            channel_id=CHANNEL_TXS,
            on_hashed_txs=self._on_gossiped_txs,
            limits=GossipLimits(tx_bytes_max=tx_bytes_max, batch_bytes_max=1024 * 1024),
        )
        p2p.add_peer_listener(self._on_peer)
        self.sync = BlockSync(reader=reader, send=self._send_sync, on_blocks=self._on_blocks)
        p2p.register_channel(
            CHANNEL_SYNC,
            self.sync.on_message,
            send_queue_max=64,
            message_bytes_max=message_bytes_max,
        )

    async def start(self) -> None:
        await self.p2p.start()
        self.gossip.start()

    async def stop(self) -> None:
        tasks = [*self._workers.values(), *self._admissions]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.gossip.stop()
        await self.p2p.stop()

    # --- consensus out --------------------------------------------------------------------

    def send(self, envelope: Envelope) -> None:
        assert self._codec is not None
        payload = self._codec.encode(envelope.message)
        kind = type(envelope.message).__name__
        if envelope.to is None:
            targets = [key for key in self._validators.public_keys if key != self._own_key]
        else:
            targets = [self._validators.public_keys[envelope.to]]
        for key in targets:
            if self.p2p.send(key, CHANNEL_CONSENSUS, payload):
                self.messages_out[kind] += 1

    # --- consensus in ---------------------------------------------------------------------

    def _on_consensus(self, peer_key: bytes, payload: bytes) -> None:
        sender = self._validators.index_of(peer_key)
        if sender is None:
            self._reject("not_a_validator", peer_key, "consensus message from a non-validator")
            return
        assert self._codec is not None
        try:
            message = self._codec.decode(payload)
        except DecodeError as error:
            self._reject("decode", peer_key, str(error))
            return
        reason = self._codec.invalid(message, NodeId(sender))
        if reason is not None:
            self._reject("invalid", peer_key, reason)
            return
        self.messages_in[type(message).__name__] += 1
        blocks = self._codec.carried_blocks(message)
        if not blocks and peer_key not in self._workers:
            self._offer(NodeId(sender), message, peer_key)  # fast path: nothing to verify
            return
        queue = self._ingress.get(peer_key)
        if queue is None:
            queue = asyncio.Queue(maxsize=_PEER_INGRESS_MAX)
            self._ingress[peer_key] = queue
            self._workers[peer_key] = asyncio.create_task(
                self._ingress_worker(peer_key, NodeId(sender), queue)
            )
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            self._reject("ingress_full", peer_key, "per-peer ingress queue full")

    async def _ingress_worker(
        self, peer_key: bytes, sender: NodeId, queue: asyncio.Queue[object]
    ) -> None:
        while True:
            message = await queue.get()
            assert self._codec is not None
            for block in self._codec.carried_blocks(message):
                if self._standby_verifier is not None:
                    await self._standby_verifier.settle(block.tx_hashes())
                bad = await self._mempool.ensure_verified_async(block.txs, block.tx_hashes())
                if bad is not None:
                    self._reject(
                        "bad_tx_signature",
                        peer_key,
                        f"block {block.height} tx {bad} has a bad signature",
                    )
                    break
            else:
                for block in self._codec.carried_blocks(message):
                    self._on_carried_block(block)
                self._offer(sender, message, peer_key)

    def _offer(self, sender: NodeId, message: object, peer_key: bytes) -> None:
        if not self._driver.offer_peer(Received(sender, message)):
            self.rejected["inbox_full"] += 1

    def _reject(self, reason: str, peer_key: bytes, detail: str) -> None:
        """Counted always; logged for the first few of each reason, then every 1,000th, so a
        flooding peer cannot flood the log too."""
        self.rejected[reason] += 1
        count = self.rejected[reason]
        if count <= _REJECTIONS_LOGGED or count % 1_000 == 0:
            log.warning(
                "rejected message from %s: %s (%s; %d so far)",
                peer_key.hex()[:12],
                reason,
                detail,
                count,
            )

    # --- tx gossip --------------------------------------------------------------------------

    def _on_peer(self, peer_key: bytes, connected: bool) -> None:
        """A peer that (re)connects gets the txs we hold: it missed their first flood. Under
        `txs_to_leader` only the leader needs them (or any peer, while none is known)."""
        if connected and (not self._txs_to_leader or self._leader_key in (None, peer_key)):
            pending = self._mempool.pending_txs(_REGOSSIP_TXS_MAX)
            self._offer_txs(peer_key, [tx.encode() for tx in pending], "re-gossiped")

    def _offer_txs(self, peer_key: bytes, raws: list[bytes], what: str) -> None:
        queued = self.gossip.offer_to_peer(peer_key, raws)
        if queued:
            log.info("%s %d pending txs to %s", what, queued, peer_key.hex()[:12])

    def note_leader(self, leader: NodeId | None) -> None:
        """The engine's leader after a step. Under `txs_to_leader` a new leader is offered
        every tx waiting here (not carried by a block yet) that it is not known to have:
        those forwarded went to the old one."""
        if not self._txs_to_leader:
            return
        keys = self._validators.public_keys
        key = keys[leader] if leader is not None and 0 <= leader < len(keys) else None
        if key == self._leader_key:
            return
        self._leader_key = key
        if key is not None and key != self._own_key and key in self.p2p.connected_keys():
            waiting = self._mempool.pending_raws_before(
                self._mempool.arrival_mark(), _REGOSSIP_TXS_MAX
            )
            self._offer_txs(key, waiting, "offered the new leader")

    def gossip_txs(self, raws: Sequence[bytes], digests: Sequence[bytes]) -> None:
        """Flood txs this node admitted (under `txs_to_leader` a follower sends them to the
        leader alone; see the module docstring); `digests` are their hashes (the
        mempool's), which gossip's seen-cache is keyed by, so they are not hashed again."""
        leader = self._leader_key
        if (
            self._txs_to_leader
            and leader is not None
            and leader != self._own_key
            and leader in self.p2p.connected_keys()
        ):
            self.gossip.add_many(raws, digests, only=leader)
        else:
            self.gossip.add_many(raws, digests)

    def _on_gossiped_txs(self, peer_key: bytes, raws: list[bytes], digests: list[bytes]) -> None:
        from_validator = self._validators.index_of(peer_key) is not None
        if self.standby is None or not from_validator:
            self._admit_gossiped(raws, digests, relay=True)
        elif self._is_leader():
            self._admit_gossiped(raws, digests, relay=False)
        else:
            self._keep_in_standby(self.standby, raws, digests)

    def _admit_gossiped(self, raws: list[bytes], digests: list[bytes], *, relay: bool) -> None:
        """Admit in full. A small batch (the usual gossip frame) is admitted right here: its
        signatures are verified on this thread anyway, so it needs no task; a larger one
        verifies in the verify threads, in a task of its own."""
        if len(raws) <= limits.verify_inline_txs_max:
            admissions = self._mempool.add_small_batch(raws, digests)
            self._after_admission(raws, digests, admissions, relay=relay)
        else:
            self._spawn(self._admit_gossiped_batch(raws, digests, relay=relay))

    def _keep_in_standby(
        self, standby: StandbyStore, raws: list[bytes], digests: list[bytes]
    ) -> None:
        """Keep the txs raw and queue the ones newly kept for the background signature
        check, so their block finds them verified."""
        kept = [
            (digest, raw)
            for digest, raw in zip(digests, raws, strict=True)
            if standby.add(digest, raw)
        ]
        if self._standby_verifier is not None:
            self._standby_verifier.enqueue(kept)

    def _spawn(self, admission: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(admission)
        self._admissions.add(task)
        task.add_done_callback(self._admissions.discard)

    async def _admit_gossiped_batch(
        self, raws: list[bytes], digests: list[bytes], *, relay: bool
    ) -> None:
        admissions = await self._mempool.add_batch(raws, digests)
        self._after_admission(raws, digests, admissions, relay=relay)

    def _after_admission(
        self,
        raws: list[bytes],
        digests: list[bytes],
        admissions: list[Admission],
        *,
        relay: bool,
    ) -> None:
        """Relay what was admitted (if asked to), and let gossip forget what was refused
        for a passing reason, so that a later copy (a re-offer) may be admitted."""
        relayed: list[bytes] = []
        relayed_digests: list[bytes] = []
        for raw, digest, admission in zip(raws, digests, admissions, strict=True):
            if admission.added:
                if relay:
                    relayed.append(raw)
                    relayed_digests.append(digest)
            elif admission.reason in PASSING_REFUSALS:
                self.gossip.forget_digest(digest)
        if relayed:
            self.gossip_txs(relayed, relayed_digests)

    def reoffer_to_leader(self, leader: int, raws: list[bytes]) -> int:
        """Send txs that have waited here too long to the leader again: it may have
        refused them while its pool was full, and a backup holding txs the leader never
        orders would end up suspecting a leader that is merely busy. Returns how many
        were queued."""
        if not 0 <= leader < self._validators.size:
            return 0
        key = self._validators.public_keys[leader]
        if key == self._own_key or key not in self.p2p.connected_keys():
            return 0
        return self.gossip.resend_to_peer(key, raws)

    # --- block sync -------------------------------------------------------------------------

    def fetch(self, request: FetchRequest) -> None:
        peer_key = self._pick_peer(request.peer)
        if peer_key is None:
            return
        self.sync.fetch(peer_key, request.from_height, request.to_height)

    def _pick_peer(self, hint: NodeId | None) -> bytes | None:
        connected = set(self.p2p.connected_keys())
        if hint is not None and 0 <= hint < self._validators.size:
            key = self._validators.public_keys[hint]
            if key in connected and key != self._own_key:
                return key
        candidates = sorted(
            key for key in self._validators.public_keys if key in connected and key != self._own_key
        )
        return self._rng.choice(candidates) if candidates else None

    def _send_sync(self, peer_key: bytes, payload: bytes) -> bool:
        return self.p2p.send(peer_key, CHANNEL_SYNC, payload)

    def _on_blocks(self, peer_key: bytes, blocks: list[SealedBlock]) -> None:
        sender = self._validators.index_of(peer_key)
        if sender is None:
            self._reject("not_a_validator", peer_key, "blocks from a non-validator")
            return
        self._driver.post_control(Fetched(NodeId(sender), tuple(blocks)))


def net_info_document(network: NodeNetwork, genesis: Genesis) -> dict[str, object]:
    """CometBFT's net_info shape, plus per-peer traffic and this node's rejection counts."""
    names = {validator.public_key: validator.name for validator in genesis.validators}
    peers = [
        {
            "node_id": info.public_key.hex(),
            "moniker": names.get(info.public_key, "observer"),
            "is_validator": info.public_key in names,
            "remote_addr": info.address,
            "is_outbound": info.direction == "outbound",
            "connected_since": info.connected_since,
            "bytes_sent": info.bytes_out,
            "bytes_received": info.bytes_in,
            "messages_sent": info.messages_out,
            "messages_received": info.messages_in,
        }
        for info in network.p2p.peers()
    ]
    return {
        "listening": True,
        "listen_port": network.p2p.listen_port,
        "n_peers": len(peers),
        "peers": peers,
        "rejected": dict(network.rejected),
        "rejected_connections": dict(network.p2p.stats.rejected_connections),
        "messages_in": dict(network.messages_in),
        "messages_out": dict(network.messages_out),
    }
