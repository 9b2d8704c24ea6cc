"""Block sync over p2p: serve committed blocks with their seals, and fetch them for the
engine's FetchRequests.

Wire (channel CHANNEL_SYNC): a request is `u8 1 | u64 from | u64 to`; a response is
`u8 2 | u32 count | count × bytes32 SealedBlock`. A response holds at most
`sync_blocks_max` blocks and `sync_response_bytes_max` bytes; the requester gets fewer and
asks again. Nothing here trusts the blocks: decoding is strict, and the engine checks every
seal before it commits anything (consensus/pbft/catchup.py, consensus/follower.py).

At most one fetch is outstanding; a fetch that gets no answer within `fetch_timeout_s` is
forgotten so the next request (to another peer) can go out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from node.queries import ChainReader
from protocol.encoding import DecodeError, Reader, Writer
from protocol.limits import block_bytes_max
from protocol.sealed import SealedBlock, decode_sealed_block

log = logging.getLogger(__name__)

REQUEST = 1
RESPONSE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncLimits:
    sync_blocks_max: int = 64
    sync_response_bytes_max: int = 8 * 1024 * 1024
    fetch_timeout_s: float = 2.0


def encode_request(from_height: int, to_height: int) -> bytes:
    return Writer().u8(REQUEST).u64(from_height).u64(to_height).finish()


def decode_message(payload: bytes, *, blocks_max: int) -> tuple[int, int] | list[SealedBlock]:
    """A request as (from, to), or a response as its sealed blocks; DecodeError otherwise."""
    reader = Reader(payload)
    kind = reader.u8("kind")
    if kind == REQUEST:
        from_height, to_height = reader.u64("from"), reader.u64("to")
        reader.finish("sync request")
        if not 1 <= from_height <= to_height:
            raise DecodeError(f"bad range {from_height}..{to_height}")
        return from_height, to_height
    if kind == RESPONSE:
        count = reader.u32("count")
        if count > blocks_max:
            raise DecodeError(f"{count} blocks in one response, max {blocks_max}")
        raws = [
            reader.bytes32(f"block[{i}]", max_bytes=block_bytes_max + 64 * 1024)
            for i in range(count)
        ]
        reader.finish("sync response")
        return [decode_sealed_block(raw) for raw in raws]
    raise DecodeError(f"unknown sync message kind {kind}")


class BlockSync:
    def __init__(
        self,
        *,
        reader: ChainReader,
        send: Callable[[bytes, bytes], bool],
        on_blocks: Callable[[bytes, list[SealedBlock]], None],
        limits: SyncLimits | None = None,
    ) -> None:
        self._reader = reader
        self._send = send
        self._on_blocks = on_blocks
        self._limits = limits or SyncLimits()
        self._outstanding: tuple[bytes, float] | None = None  # (peer, sent at)
        self.served_blocks_total = 0
        self.rejected_total = 0

    def fetch(self, peer_key: bytes, from_height: int, to_height: int) -> bool:
        now = time.monotonic()
        if self._outstanding is not None:
            _, sent_at = self._outstanding
            if now - sent_at < self._limits.fetch_timeout_s:
                return False  # one at a time
        to_height = min(to_height, from_height + self._limits.sync_blocks_max - 1)
        if not self._send(peer_key, encode_request(from_height, to_height)):
            return False
        self._outstanding = (peer_key, now)
        return True

    def on_message(self, peer_key: bytes, payload: bytes) -> None:
        try:
            message = decode_message(payload, blocks_max=self._limits.sync_blocks_max)
        except DecodeError as error:
            self.rejected_total += 1
            log.warning("bad block-sync message from %s: %s", peer_key.hex()[:12], error)
            return
        if isinstance(message, tuple):
            self._serve(peer_key, *message)
            return
        if self._outstanding is None or self._outstanding[0] != peer_key:
            # Unsolicited blocks: dropped, so a peer cannot queue work for the engine.
            self.rejected_total += 1
            log.warning("unsolicited blocks from %s dropped", peer_key.hex()[:12])
            return
        self._outstanding = None
        if message:
            self._on_blocks(peer_key, message)

    def _serve(self, peer_key: bytes, from_height: int, to_height: int) -> None:
        latest = self._reader.latest_height()
        last = min(to_height, latest, from_height + self._limits.sync_blocks_max - 1)
        raws: list[bytes] = []
        total = 0
        for height in range(from_height, last + 1):
            sealed = self._reader.sealed_block(height)
            if sealed is None:
                break
            raw = sealed.encode()
            if raws and total + len(raw) > self._limits.sync_response_bytes_max:
                break
            raws.append(raw)
            total += len(raw)
        writer = Writer().u8(RESPONSE).u32(len(raws))
        for raw in raws:
            writer.bytes32(raw)
        if self._send(peer_key, writer.finish()):
            self.served_blocks_total += len(raws)
