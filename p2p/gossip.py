"""Tx gossip: batched flooding of already-validated raw txs, with a bounded seen-cache.

The node calls `add(tx)` for each tx it wants flooded (one its client sent it; whether a tx
received from a peer is relayed is the node's choice). Gossip remembers, per tx hash, which
peers already have it (they sent it to us, or we queued it to them) and never sends it to
those again. Received batches are de-duplicated and handed to `on_txs(peer_key, txs)` — or,
to a node that wants to reuse the hashes gossip computed, to
`on_hashed_txs(peer_key, txs, digests)` — and the node decides what to do with them.

Everything is bounded: the seen-cache by count (oldest evicted first) and age, each peer's
pending batch by count and bytes, the number of batches queued in p2p by its channel queue.
A tx evicted from the cache may be sent again later; the receiver's mempool de-duplicates.

Wire format of one message on the gossip channel: a msgpack array of bin items (raw txs).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

log = logging.getLogger(__name__)

ITEM_OVERHEAD_BYTES = 5  # msgpack bin32 header, the worst case per tx
ARRAY_OVERHEAD_BYTES = 5  # msgpack array32 header

OnTxs = Callable[[bytes, list[bytes]], None]
# (peer key, fresh txs, their SHA-256 digests in the same order)
OnHashedTxs = Callable[[bytes, list[bytes], list[bytes]], None]


class GossipTransport(Protocol):
    """What gossip needs from P2PNode (and what a test double must provide)."""

    def register_channel(
        self,
        channel_id: int,
        on_message: Callable[[bytes, bytes], None],
        *,
        send_queue_max: int,
        message_bytes_max: int,
    ) -> None: ...

    def send(self, peer_key: bytes, channel_id: int, payload: bytes) -> bool: ...

    def connected_keys(self) -> list[bytes]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipLimits:
    seen_max: int = 100_000  # hashes remembered (~12 s at 8,000 tx/s); oldest evicted first
    seen_ttl_s: float = 60.0  # and forgotten after this long
    batch_txs_max: int = 1_000
    batch_bytes_max: int = 512 * 1024
    # A partial batch waits at most this long; one to a peer nothing was sent to for this
    # long leaves at once (`add_many`), so at most ~2 batches per interval go to a peer.
    flush_interval_s: float = 0.01
    tx_bytes_max: int = 64 * 1024
    send_queue_max: int = 256  # batches queued per peer inside p2p

    def __post_init__(self) -> None:
        assert self.tx_bytes_max + ITEM_OVERHEAD_BYTES + ARRAY_OVERHEAD_BYTES <= (
            self.batch_bytes_max
        )
        assert self.batch_txs_max >= 1
        assert self.seen_max >= 1


class _Seen(msgspec.Struct, gc=False):
    """One seen-cache entry, built for every tx gossip meets. A msgspec Struct because it
    is built at half the cost of a slotted dataclass; gc=False because it holds only
    scalars, so it can never be part of a cycle and the collector need not track it."""

    added_at: float
    peer_bits: int  # bit i set: the peer with index i is known to have this tx
    forwarded: bool  # add() was called for it


@dataclass(slots=True)
class GossipStats:
    txs_received: int = 0
    txs_duplicate: int = 0
    txs_sent: int = 0
    batches_sent: int = 0
    batches_received: int = 0
    drops: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Pending:
    txs: list[bytes] = field(default_factory=list)
    batch_bytes: int = ARRAY_OVERHEAD_BYTES
    sent_at: float = -math.inf  # when the last batch to this peer left


class TxGossip:
    def __init__(
        self,
        transport: GossipTransport,
        *,
        channel_id: int,
        on_txs: OnTxs | None = None,
        on_hashed_txs: OnHashedTxs | None = None,
        limits: GossipLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert (on_txs is None) != (on_hashed_txs is None), "exactly one receive callback"
        self._transport = transport
        self._channel_id = channel_id
        self._on_txs = on_txs
        self._on_hashed_txs = on_hashed_txs
        self._limits = limits or GossipLimits()
        self._clock = clock
        self._seen: OrderedDict[bytes, _Seen] = OrderedDict()
        self._pending: dict[bytes, _Pending] = {}
        # A small index per peer key, so each cache entry stores an int bitmask rather than
        # a set. Bounded by the peers p2p admits (the allowed key set).
        self._peer_index: dict[bytes, int] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._decoder = msgspec.msgpack.Decoder(list[bytes])
        self.stats = GossipStats()
        transport.register_channel(
            channel_id,
            self._on_message,
            send_queue_max=self._limits.send_queue_max,
            message_bytes_max=self._limits.batch_bytes_max,
        )

    # --- lifecycle ---

    def start(self) -> None:
        assert self._flush_task is None, "started twice"
        self._flush_task = asyncio.create_task(self._flush_loop(), name="p2p-gossip-flush")

    async def stop(self) -> None:
        if self._flush_task is not None:
            self._flush_task.cancel()
            await asyncio.gather(self._flush_task, return_exceptions=True)
            self._flush_task = None
        self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._limits.flush_interval_s)
            self.flush()

    # --- outgoing ---

    def add(self, tx: bytes) -> bool:
        """Gossip a validated tx to every connected peer that does not have it yet.
        False if it was already gossiped (or is too large to gossip)."""
        return self.add_many([tx]) == 1

    def add_many(
        self,
        txs: Sequence[bytes],
        digests: Sequence[bytes] | None = None,
        *,
        only: bytes | None = None,
    ) -> int:
        """`add` for many txs, in order; `digests` are their SHA-256 digests if the caller
        has them (the mempool hashed each tx it admitted), so they are not hashed again.
        The connected peers, the clock and the expiry are read once per call, not per tx.
        `only` names the one peer to send them to (a Raft follower forwards to its leader);
        a tx sent there counts as gossiped, so a later `add` skips it (`offer_to_peer`
        reaches another peer).

        A peer that was sent nothing for a flush interval gets its batch now rather than
        at the next flush: at a moderate rate a client's call (an RPC `broadcast_txs`) is
        already a batch, and the timer would only add up to an interval of latency to
        every tx; under load batches still leave at most ~twice per interval. Returns how
        many txs were newly gossiped."""
        assert digests is None or len(digests) == len(txs), "one digest per tx"
        remember = self._remembering()
        keys = self._transport.connected_keys() if only is None else (only,)
        peers = [(key, self._peer_bit(key)) for key in keys]
        tx_bytes_max = self._limits.tx_bytes_max
        added = 0
        for index, tx in enumerate(txs):
            if len(tx) > tx_bytes_max:
                self.stats.drops["too_large"] += 1
                continue
            digest = hashlib.sha256(tx).digest() if digests is None else digests[index]
            entry = self._entry_of(remember, digest)
            if entry.forwarded:
                continue
            entry.forwarded = True
            added += 1
            for peer_key, bit in peers:
                if not entry.peer_bits & bit:
                    entry.peer_bits |= bit
                    self._enqueue(peer_key, tx)
        if added:
            self._send_to_idle_peers(peers)
        return added

    def _send_to_idle_peers(self, peers: list[tuple[bytes, int]]) -> None:
        now = self._clock()
        interval = self._limits.flush_interval_s
        for peer_key, _ in peers:
            pending = self._pending.get(peer_key)
            if pending is not None and pending.txs and now - pending.sent_at >= interval:
                self._send(peer_key, pending, now=now)

    def offer_to_peer(self, peer_key: bytes, txs: list[bytes]) -> int:
        """Send validated txs this node holds to one peer — typically one that just
        connected and missed their first flood — skipping those it is known to have.
        CometBFT's mempool reactor makes the same walk for each new peer. Returns how many
        were queued."""
        remember = self._remembering()
        bit = self._peer_bit(peer_key)
        queued = 0
        for tx in txs:
            if len(tx) > self._limits.tx_bytes_max:
                continue
            entry = self._entry_of(remember, hashlib.sha256(tx).digest())
            if entry.peer_bits & bit:
                continue
            entry.peer_bits |= bit
            self._enqueue(peer_key, tx)
            queued += 1
        return queued

    def resend_to_peer(self, peer_key: bytes, txs: list[bytes]) -> int:
        """Send txs to one peer even if it is known to have them: it refused them earlier
        (its pool was full) and they are still waiting here. At most `batch_txs_max` per
        call; returns how many were queued."""
        remember = self._remembering()
        bit = self._peer_bit(peer_key)
        queued = 0
        for tx in txs[: self._limits.batch_txs_max]:
            if len(tx) > self._limits.tx_bytes_max:
                continue
            remember(hashlib.sha256(tx).digest(), bit)
            self._enqueue(peer_key, tx)
            queued += 1
        return queued

    def forget(self, tx: bytes) -> None:
        """Drop what we know of this tx, so that the next copy from a peer is handed to
        `on_txs` again. The node calls it for a tx its pool refused for a passing reason
        (full, signer quota): a later copy may well be admitted."""
        self.forget_digest(hashlib.sha256(tx).digest())

    def forget_digest(self, digest: bytes) -> None:
        """`forget` by the tx's SHA-256 digest, for a caller that already has it."""
        self._seen.pop(digest, None)

    def _peer_bit(self, peer_key: bytes) -> int:
        index = self._peer_index.get(peer_key)
        if index is None:
            index = self._peer_index[peer_key] = len(self._peer_index)
        return 1 << index

    def _enqueue(self, peer_key: bytes, tx: bytes) -> None:
        pending = self._pending.get(peer_key)
        if pending is None:
            pending = self._pending[peer_key] = _Pending()
        size = len(tx) + ITEM_OVERHEAD_BYTES
        if pending.batch_bytes + size > self._limits.batch_bytes_max:
            self._send(peer_key, pending)
        pending.txs.append(tx)
        pending.batch_bytes += size
        if len(pending.txs) >= self._limits.batch_txs_max:
            self._send(peer_key, pending)

    def flush(self) -> None:
        """Send every partial batch now (called every flush interval)."""
        now = self._clock()
        for peer_key in list(self._pending):
            pending = self._pending[peer_key]
            if pending.txs:
                self._send(peer_key, pending, now=now)
            elif now - pending.sent_at >= self._limits.flush_interval_s:
                del self._pending[peer_key]  # idle: its next batch may leave at once

    def _send(self, peer_key: bytes, pending: _Pending, *, now: float | None = None) -> None:
        txs = pending.txs
        pending.txs = []
        pending.batch_bytes = ARRAY_OVERHEAD_BYTES
        pending.sent_at = self._clock() if now is None else now
        payload = msgspec.msgpack.encode(txs)
        assert len(payload) <= self._limits.batch_bytes_max
        if self._transport.send(peer_key, self._channel_id, payload):
            self.stats.batches_sent += 1
            self.stats.txs_sent += len(txs)
        else:
            self.stats.drops["send_refused"] += len(txs)

    # --- incoming ---

    def _on_message(self, peer_key: bytes, payload: bytes) -> None:
        try:
            txs = self._decoder.decode(payload)
        except msgspec.DecodeError:
            self.stats.drops["undecodable"] += 1
            log.warning("gossip: undecodable batch from %s", peer_key.hex()[:16])
            return
        self.stats.batches_received += 1
        remember = self._remembering()
        bit = self._peer_bit(peer_key)
        tx_bytes_max = self._limits.tx_bytes_max
        fresh: list[bytes] = []
        digests: list[bytes] = []
        duplicates = 0
        for tx in txs:
            if len(tx) > tx_bytes_max:
                self.stats.drops["too_large_inbound"] += 1
                continue
            digest = hashlib.sha256(tx).digest()
            if remember(digest, bit) is None:
                fresh.append(tx)
                digests.append(digest)
            else:
                duplicates += 1
        self.stats.txs_received += len(fresh)
        self.stats.txs_duplicate += duplicates
        if not fresh:
            return
        if self._on_hashed_txs is not None:
            self._on_hashed_txs(peer_key, fresh, digests)
        else:
            assert self._on_txs is not None
            self._on_txs(peer_key, fresh)

    # --- seen-cache ---

    def _remembering(self) -> Callable[[bytes, int], _Seen | None]:
        """Expire old entries once, then return a function that marks the peers in
        `peer_bits` as having the tx of a digest: it returns the tx's entry if it was
        already known, or None after adding one (a new entry is never evicted at once:
        `seen_max` >= 1). The clock is read once per call of the caller (a batch), not per
        tx: entries of one batch share their time."""
        now = self._clock()
        self._expire(now)
        seen = self._seen
        seen_max = self._limits.seen_max

        def remember(digest: bytes, peer_bits: int) -> _Seen | None:
            new = _Seen(now, peer_bits, False)
            entry = seen.setdefault(digest, new)
            if entry is not new:
                entry.peer_bits |= peer_bits
                return entry
            while len(seen) > seen_max:
                seen.popitem(last=False)
            return None

        return remember

    def _entry_of(self, remember: Callable[[bytes, int], _Seen | None], digest: bytes) -> _Seen:
        """The entry of a digest, added if new (for the outgoing paths)."""
        entry = remember(digest, 0)
        return self._seen[digest] if entry is None else entry

    def _expire(self, now: float) -> None:
        horizon = now - self._limits.seen_ttl_s
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if oldest.added_at >= horizon:
                return
            seen.popitem(last=False)

    def seen_count(self) -> int:
        return len(self._seen)
