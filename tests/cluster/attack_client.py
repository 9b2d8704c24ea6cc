"""Hostile p2p clients for the attack scenario: they speak (or mangle) the real wire
protocol from p2p/ (framing, handshake, sealed records) against a running node.

Every connection has a deadline; every flood a count and a concurrency cap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from dataclasses import dataclass

from nacl.signing import SigningKey

from p2p.framing import encode_frame
from p2p.handshake import Handshake, run_handshake
from p2p.secure import SecureSession, encode_records

CONNECT_TIMEOUT_S = 5.0


@dataclass
class Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    secure: SecureSession

    def send_records(self, records: list[tuple[int, bytes]]) -> None:
        self.writer.write(encode_frame(self.secure.seal(encode_records(records))))

    def close(self) -> None:
        self.writer.transport.abort()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        return await asyncio.open_connection("127.0.0.1", port)


async def handshake_as(key: SigningKey, port: int, *, chain_id: str) -> Session:
    """A complete handshake with `key` (we accept any node key). The node checks our key
    only after sending its own AUTH, so this returns even for a key the node refuses."""
    reader, writer = await connect(port)
    handshake = Handshake(signing_key=key, chain_id=chain_id, is_allowed=lambda _key: True)
    result = await run_handshake(reader, writer, handshake, timeout_s=CONNECT_TIMEOUT_S)
    return Session(reader, writer, result.session)


async def closed_by_peer(reader: asyncio.StreamReader, *, timeout_s: float) -> bool:
    """True if the node ends the connection (EOF or reset) within `timeout_s`; whatever it
    sends before that is read and discarded (bounded by the timeout)."""
    try:
        async with asyncio.timeout(timeout_s):
            while await reader.read(65_536):
                pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


async def send_raw_and_wait_close(port: int, payload: bytes, *, timeout_s: float) -> bool:
    """Connect, send `payload` instead of a handshake, report whether the node hung up."""
    reader, writer = await connect(port)
    try:
        writer.write(payload)
        with contextlib.suppress(OSError):
            await writer.drain()
        return await closed_by_peer(reader, timeout_s=timeout_s)
    finally:
        writer.transport.abort()


def garbage_hello() -> bytes:
    """A well-sized HELLO frame (38 bytes) with a wrong magic: refused as bad_handshake."""
    return encode_frame(b"JUNK" + os.urandom(34))


def oversized_prefix() -> bytes:
    """A length prefix of ~2 GiB: must be refused on the 4 prefix bytes alone."""
    return struct.pack(">I", 0x7FFF_FFF0) + os.urandom(16)


async def junk_flood(port: int, *, connections: int, concurrency: int) -> int:
    """`connections` pre-handshake connections sending random bytes, at most `concurrency`
    at once; returns how many the node closed on its own within 5 s."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> bool:
        async with gate:
            try:
                return await send_raw_and_wait_close(port, os.urandom(64), timeout_s=5.0)
            except OSError:
                return True  # refused at accept: the node shed the connection

    results = await asyncio.gather(*(one() for _ in range(connections)))
    return sum(results)
